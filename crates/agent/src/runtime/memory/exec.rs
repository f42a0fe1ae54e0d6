//! Execs in the in-memory runtime: what `docker exec` would do in a busybox container, read
//! the way busybox's `sh` runs a command line.
//!
//! What this is: [`Shell`], a model of the command an exec runs: `sh -c LINE`, `sh` reading
//! lines from its stdin (a prompt `/ # ` and the typed input echoed when it has a terminal, as
//! the terminal's line discipline does), or one command. Lines are `;`-separated commands of
//! `echo` (with `>&2`), `exit [N]`, `true`, `false`, `:`, `sleep N`, `cat` (stdin to stdout)
//! and `stty size` (the terminal's rows and columns; without a terminal, or on one nobody
//! sized, busybox's errors as Docker shows them); any other command is not found (127). With a terminal, stderr goes to the one
//! output and `\n` is written `\r\n`, as a terminal's `onlcr` does.
//!
//! What this is not: a shell. No variables, pipes, quoting beyond words, or processes.

use crate::runtime::{ExecSpec, OutputStream};
use flotilla_protocol::exec::{split_command, TermSize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

/// The prompt busybox's `sh` shows root.
pub(super) const PROMPT: &str = "/ # ";

/// Where a running exec writes.
pub(super) struct Output {
    tx: mpsc::UnboundedSender<(OutputStream, Vec<u8>)>,
    tty: bool,
}

impl Output {
    pub(super) fn new(tx: mpsc::UnboundedSender<(OutputStream, Vec<u8>)>, tty: bool) -> Self {
        Output { tx, tty }
    }

    fn write(&self, stream: OutputStream, text: &str) {
        let (stream, bytes) = if self.tty {
            (
                OutputStream::Stdout,
                text.replace('\n', "\r\n").into_bytes(),
            )
        } else {
            (stream, text.as_bytes().to_vec())
        };
        let _ = self.tx.send((stream, bytes));
    }

    fn raw(&self, bytes: Vec<u8>) {
        let _ = self.tx.send((OutputStream::Stdout, bytes));
    }
}

/// The model of one exec's command.
pub(super) struct Shell {
    pub(super) spec: ExecSpec,
    /// The terminal's size (set by resizes), when it has one.
    pub(super) size: Arc<Mutex<Option<TermSize>>>,
    pub(super) out: Output,
    /// Its stdin (none when not attached).
    pub(super) stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// The last command's status.
    status: i64,
}

/// What a command did.
enum Step {
    /// Go on, with this status.
    Next(i64),
    /// `exit`: the shell ends with this code.
    Exit(i64),
}

impl Shell {
    pub(super) fn new(
        spec: ExecSpec,
        size: Arc<Mutex<Option<TermSize>>>,
        out: Output,
        stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    ) -> Self {
        Shell {
            spec,
            size,
            out,
            stdin,
            status: 0,
        }
    }

    /// Runs the command to its end; its exit code.
    pub(super) async fn run(mut self) -> i64 {
        let argv = self.spec.argv.clone();
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["sh" | "/bin/sh", "-c", line, ..] => self.line(line).await,
            ["sh" | "/bin/sh"] => self.interactive().await,
            [name, ..] if !is_builtin(name) => {
                self.out.write(
                    OutputStream::Stdout,
                    &format!(
                        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{name}\": executable file not found in $PATH: unknown\n"
                    ),
                );
                126
            }
            _ => {
                let words: Vec<String> = argv.clone();
                match self.command(&words).await {
                    Step::Next(code) | Step::Exit(code) => code,
                }
            }
        }
    }

    /// `sh -c LINE`.
    async fn line(&mut self, line: &str) -> i64 {
        for cmd in line.split([';', '\n']) {
            let Ok(words) = split_command(cmd) else {
                continue;
            };
            match self.command(&words).await {
                Step::Next(code) => self.status = code,
                Step::Exit(code) => return code,
            }
        }
        self.status
    }

    /// `sh` reading its stdin line by line.
    async fn interactive(&mut self) -> i64 {
        let mut line = Vec::new();
        let mut buf = [0u8; 1024];
        if self.spec.tty {
            self.out.raw(PROMPT.as_bytes().to_vec());
        }
        loop {
            let n = match self.stdin.as_mut() {
                Some(input) => input.read(&mut buf).await.unwrap_or(0),
                None => 0,
            };
            if n == 0 {
                return self.status;
            }
            for &b in &buf[..n] {
                // The line discipline: CR is read as NL (icrnl) and echoed.
                let b = if self.spec.tty && b == b'\r' {
                    b'\n'
                } else {
                    b
                };
                if self.spec.tty {
                    self.out.raw(if b == b'\n' {
                        b"\r\n".to_vec()
                    } else {
                        vec![b]
                    });
                }
                if b != b'\n' {
                    line.push(b);
                    continue;
                }
                let text = String::from_utf8_lossy(&std::mem::take(&mut line)).into_owned();
                let code = Box::pin(self.line(&text)).await;
                self.status = code;
                if text.split([';', '\n']).any(|c| {
                    split_command(c).is_ok_and(|w| w.first().map(String::as_str) == Some("exit"))
                }) {
                    return code;
                }
                if self.spec.tty {
                    self.out.raw(PROMPT.as_bytes().to_vec());
                }
            }
        }
    }

    async fn command(&mut self, words: &[String]) -> Step {
        let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
        let stream = if words.last() == Some(&">&2") {
            words.pop();
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        };
        match words.as_slice() {
            [] | [":"] | ["true"] => Step::Next(0),
            ["false"] => Step::Next(1),
            ["exit"] => Step::Exit(self.status),
            ["exit", code] => Step::Exit(code.parse().unwrap_or(2)),
            ["echo", rest @ ..] => {
                self.out.write(stream, &format!("{}\n", rest.join(" ")));
                Step::Next(0)
            }
            ["sleep", n] => match n.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => {
                    tokio::time::sleep(Duration::from_secs_f64(s)).await;
                    Step::Next(0)
                }
                _ => {
                    self.out.write(
                        OutputStream::Stderr,
                        &format!("sleep: invalid number '{n}'\n"),
                    );
                    Step::Next(1)
                }
            },
            ["stty", "size"] => {
                let size = *self.size.lock().unwrap_or_else(|p| p.into_inner());
                match (self.spec.tty, size) {
                    (true, Some(s)) => {
                        self.out.write(stream, &format!("{} {}\n", s.rows, s.cols));
                        Step::Next(0)
                    }
                    // Busybox's answer on a terminal nobody sized (0 by 0), as Docker shows it.
                    (true, None) => {
                        self.out
                            .write(OutputStream::Stderr, "stty: standard input\n");
                        Step::Next(0)
                    }
                    (false, _) => {
                        self.out.write(
                            OutputStream::Stderr,
                            "stty: standard input: Inappropriate ioctl for device\n",
                        );
                        Step::Next(1)
                    }
                }
            }
            ["cat"] => {
                let mut buf = [0u8; 4096];
                while let Some(input) = self.stdin.as_mut() {
                    match input.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => self.out.raw(buf[..n].to_vec()),
                    }
                }
                Step::Next(0)
            }
            [name, ..] => {
                self.out
                    .write(OutputStream::Stderr, &format!("sh: {name}: not found\n"));
                Step::Next(127)
            }
        }
    }
}

/// The commands the model knows (the rest are not found in the image).
fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        ":" | "true" | "false" | "exit" | "echo" | "sleep" | "stty" | "cat"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        argv: &[&str],
        tty: bool,
        input: Option<&'static [u8]>,
        size: Option<TermSize>,
    ) -> (Vec<(OutputStream, String)>, i64) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = ExecSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin: input.is_some(),
        };
        let stdin =
            input.map(|i| Box::new(std::io::Cursor::new(i)) as Box<dyn AsyncRead + Send + Unpin>);
        let code = Shell::new(
            spec,
            Arc::new(Mutex::new(size)),
            Output::new(tx, tty),
            stdin,
        )
        .run()
        .await;
        let mut out = Vec::new();
        while let Ok((s, b)) = rx.try_recv() {
            out.push((s, String::from_utf8(b).unwrap()));
        }
        (out, code)
    }

    fn text(out: &[(OutputStream, String)], stream: OutputStream) -> String {
        out.iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, t)| t.as_str())
            .collect()
    }

    #[tokio::test]
    async fn sh_c_runs_each_command_of_the_line() {
        let (out, code) = run(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            false,
            None,
            None,
        )
        .await;
        assert_eq!(text(&out, OutputStream::Stdout), "out\n");
        assert_eq!(text(&out, OutputStream::Stderr), "err\n");
        assert_eq!(code, 3);
        let (out, code) = run(&["sh", "-c", "nope; false"], false, None, None).await;
        assert_eq!(text(&out, OutputStream::Stderr), "sh: nope: not found\n");
        assert_eq!(code, 1);
        let (_, code) = run(&["nope"], false, None, None).await;
        assert_eq!(code, 126);
    }

    #[tokio::test]
    async fn a_terminal_merges_the_streams_and_translates_newlines() {
        let size = Some(TermSize { cols: 80, rows: 24 });
        let (out, code) = run(
            &["sh", "-c", "echo a; echo b >&2; stty size"],
            true,
            None,
            size,
        )
        .await;
        assert_eq!(text(&out, OutputStream::Stdout), "a\r\nb\r\n24 80\r\n");
        assert_eq!(code, 0);
        let (out, code) = run(&["stty", "size"], false, None, size).await;
        assert_eq!(
            text(&out, OutputStream::Stderr),
            "stty: standard input: Inappropriate ioctl for device\n"
        );
        assert_eq!(code, 1);
        let (out, code) = run(&["stty", "size"], true, None, None).await;
        assert_eq!(text(&out, OutputStream::Stdout), "stty: standard input\r\n");
        assert_eq!(code, 0);
    }

    #[tokio::test]
    async fn an_interactive_shell_reads_its_stdin() {
        let size = Some(TermSize {
            cols: 100,
            rows: 30,
        });
        let (out, code) = run(&["sh"], true, Some(b"stty size\rexit 5\r"), size).await;
        assert_eq!(
            text(&out, OutputStream::Stdout),
            "/ # stty size\r\n30 100\r\n/ # exit 5\r\n"
        );
        assert_eq!(code, 5);
        let (out, code) = run(&["cat"], false, Some(b"one\ntwo"), None).await;
        assert_eq!(text(&out, OutputStream::Stdout), "one\ntwo");
        assert_eq!(code, 0);
        let (_, code) = run(&["sh"], false, Some(b"false\n"), None).await;
        assert_eq!(code, 1);
    }
}
