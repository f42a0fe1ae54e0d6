//! `flotilla exec [-i] [-t] TASK [--cluster C] [--container C] -- COMMAND [ARG...]`: runs a
//! command in a running container of a task (ECS Exec), like `docker exec`.
//!
//! It goes the way every client goes: `ExecuteCommand` through the ECS API (SigV4, the
//! endpoint's replicas tried in turn as for every verb), then the session's `streamUrl`, a
//! WebSocket on the replica that answered, opened with a `GET` signed by the same key and the
//! session's `tokenValue`. The stream carries `flotilla_protocol::exec::Frame`s: stdin (with
//! `-i`) and terminal sizes (with `-t`, at the start and on every SIGWINCH) up, the command's
//! stdout and stderr down (one stream with `-t`, as from a terminal), then its exit code, which
//! becomes this process's. With `-it` the local terminal is in raw mode while the command runs
//! and restored after.

use crate::client::EndpointArgs;
use crate::terminal;
use anyhow::{anyhow, bail, Context};
use flotilla_protocol::exec::{join_command, Frame, StreamOptions, TOKEN_HEADER};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::io::{IsTerminal, Read, Write};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;

/// The exit code when Flotilla itself fails (the command was refused, could not start, or the
/// stream broke), as `ssh` does: any other code is the command's own.
pub const FAILED: i32 = 255;

/// Flags of `flotilla exec`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
Examples:
  flotilla exec 1f2e3d4c5b6a79880123456789abcdef -- sh -c 'echo out; echo err >&2; exit 3'
  flotilla exec -it TASK --cluster prod --container web -- sh
  echo 'SELECT 1;' | flotilla exec -i TASK -- psql -U app

The task must have been started with enableExecuteCommand (run-task/start-task
--enable-execute-command, or a service created or updated with it), and the container must be
running: DescribeTasks shows its ExecuteCommandAgent as RUNNING.

Exit status: the command's own; 255 when Flotilla could not run it (refused, task or container
not found, agent not connected) or the stream broke.

This is what `aws ecs execute-command` does on AWS with the Session Manager plugin, which works
only with AWS's SSM service: against Flotilla, use this command (or open the session's streamUrl
as README.md describes).")]
pub struct ExecArgs {
    /// Keep stdin open and send it to the command (without it the command reads end of file).
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a terminal: its size follows this one (sent again on every SIGWINCH,
    /// when the window is resized), stdout and stderr come as one stream, and with -i this terminal is in raw mode (every key goes to the command) until
    /// it ends.
    #[arg(short, long)]
    tty: bool,
    /// The task: its id or ARN.
    task: String,
    /// The task's cluster [default: the one in the task ARN, else `default`].
    #[arg(long)]
    cluster: Option<String>,
    /// The container, by its name in the task definition (needed when the task has several).
    #[arg(long)]
    container: Option<String>,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The command and its arguments, after `--`. Each argument reaches the command as given:
    /// no shell reads it unless you run one (`-- sh -c 'a | b'`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command; returns the exit code for this process (the terminal restored already).
pub async fn run(args: ExecArgs) -> i32 {
    match exec(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            FAILED
        }
    }
}

async fn exec(args: ExecArgs) -> anyhow::Result<i32> {
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY: run -it from a terminal, or drop -t to send stdin as it is");
    }
    let client = args.endpoint.client()?;
    let mut input = json!({
        "task": args.task,
        "command": join_command(&args.command),
        "interactive": true,
    });
    if let Some(c) = &args.cluster {
        input["cluster"] = json!(c);
    }
    if let Some(c) = &args.container {
        input["container"] = json!(c);
    }
    let answer = client.call("ExecuteCommand", input).await?;
    let session = &answer["session"];
    let (Some(url), Some(token)) = (
        session["streamUrl"].as_str(),
        session["tokenValue"].as_str(),
    ) else {
        bail!("ExecuteCommand answered no session: {answer}");
    };
    let options = StreamOptions {
        tty: args.tty,
        stdin: args.interactive,
        size: if args.tty { terminal::size() } else { None },
    };
    let url = reqwest::Url::parse(url).with_context(|| format!("the streamUrl '{url}'"))?;
    let authority = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => bail!("the streamUrl {url} has no host"),
    };
    let query = options.to_query();
    let mut req = format!("{}://{authority}{}?{query}", url.scheme(), url.path())
        .into_client_request()
        .context("the stream request")?;
    for (k, v) in client
        .sign_get(&authority, url.path(), &query)
        .into_iter()
        .chain([(TOKEN_HEADER.to_string(), token.to_string())])
    {
        req.headers_mut().insert(
            HeaderName::try_from(k.as_str())?,
            HeaderValue::from_str(&v).map_err(|_| anyhow!("header {k}"))?,
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(client.ws_connector()?),
    )
    .await
    .map_err(|e| {
        anyhow!(
            "opening the exec stream at {authority}: {}",
            flotilla_agent::client::chain(&e)
        )
    })?;
    // Raw mode only once the stream is up, so an error above prints on a sane terminal; the
    // guard restores it before this function returns.
    let _raw = if args.tty && args.interactive {
        Some(terminal::RawMode::enable().context("raw mode on this terminal")?)
    } else {
        None
    };
    pump(ws, args.interactive, args.tty).await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Carries the frames until the command's exit code (or error) comes.
async fn pump(ws: Ws, interactive: bool, tty: bool) -> anyhow::Result<i32> {
    let (mut tx, mut rx) = ws.split();
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Frame>(16);
    if interactive {
        // A thread of its own: a read of a terminal cannot be cancelled, and the process exits
        // when the command ends, whatever this thread waits for.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 8192];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = in_tx.blocking_send(Frame::StdinEnd);
                        return;
                    }
                    Ok(n) => {
                        if in_tx
                            .blocking_send(Frame::Stdin(buf[..n].to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    } else {
        drop(in_tx);
    }
    let mut winch = if tty {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .context("listening for terminal resizes")?,
        )
    } else {
        None
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        tokio::select! {
            Some(frame) = in_rx.recv() => {
                tx.send(Message::Binary(frame.encode().into())).await.context("sending stdin")?;
            }
            Some(()) = resized(&mut winch) => {
                if let Some(size) = terminal::size() {
                    tx.send(Message::Binary(Frame::Resize(size).encode().into())).await.context("sending the terminal size")?;
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => match Frame::decode(&b).context("an exec frame")? {
                    Frame::Stdout(bytes) => {
                        stdout.write_all(&bytes)?;
                        stdout.flush()?;
                    }
                    Frame::Stderr(bytes) => {
                        stderr.write_all(&bytes)?;
                        stderr.flush()?;
                    }
                    Frame::Exit(code) => return Ok(code),
                    Frame::Error(why) => bail!("{why}"),
                    Frame::Stdin(_) | Frame::Resize(_) | Frame::StdinEnd => {}
                },
                Some(Ok(Message::Close(_))) | None => bail!("the exec stream ended before the command's exit code came"),
                Some(Err(e)) => bail!("the exec stream broke: {e}"),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The next SIGWINCH (never, without a terminal).
async fn resized(winch: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match winch.as_mut() {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
