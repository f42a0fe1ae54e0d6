//! ECS Exec on the wire: how a command run in a task's container travels between the client
//! (`flotilla exec`, or anything holding an `ExecuteCommand` session), the server replicas and
//! the agent that runs the task.
//!
//! What this is:
//! - the paths and headers of the three WebSockets an exec uses ([`STREAM_PATH`]: the client's,
//!   at the replica that answered `ExecuteCommand`; [`RELAY_PATH`]: that replica to the one
//!   holding the agent's session, when they differ; [`AGENT_PATH`]: the agent dialling back to
//!   its session's replica), and the options a client opens the stream with ([`StreamOptions`]);
//! - [`ExecOrder`]: what the server tells the agent over its session
//!   (`ServerMessage::Exec`);
//! - [`Frame`]: the binary messages all three WebSockets carry, one frame per WebSocket
//!   message: a channel byte, then the payload (the channel numbers follow Kubernetes'
//!   `channel.k8s.io`: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; then 5 exit, 6 stdin
//!   end). [`Frame::encode`] and [`Frame::decode`];
//! - [`split_command`] and [`join_command`]: ECS's `command` is one string; it is split into
//!   words as a POSIX shell splits them (quotes and backslashes; no variables, globs, pipes or
//!   redirections), and `flotilla exec -- ARGS...` joins its words so that the split gives them
//!   back exactly.
//!
//! What this is not: transport. No socket, no clock, no randomness (ids and nonces are drawn by
//! the caller).

use crate::SecretText;
use serde::{Deserialize, Serialize};

/// The client's WebSocket: `GET STREAM_PATH/<sessionId>?<StreamOptions>`, SigV4-signed by the
/// caller of `ExecuteCommand`, with the session's token in [`TOKEN_HEADER`].
pub const STREAM_PATH: &str = "/exec/v1/sessions";
/// A replica's WebSocket to the replica that holds the agent's session (SigV4-signed with the
/// server's credential); its first message is a JSON [`RelayRequest`] text frame.
pub const RELAY_PATH: &str = "/exec/v1/relay";
/// The agent's dial-back: `GET AGENT_PATH/<order id>?containerInstance=<ARN>`, SigV4-signed,
/// with the order's nonce in [`NONCE_HEADER`].
pub const AGENT_PATH: &str = "/agent/v1/exec";
/// The header carrying an `ExecuteCommand` session's `tokenValue`.
pub const TOKEN_HEADER: &str = "x-flotilla-exec-token";
/// The header carrying an [`ExecOrder`]'s nonce on the agent's dial-back.
pub const NONCE_HEADER: &str = "x-flotilla-exec-nonce";
/// The prefix of an `ExecuteCommand` session id (ECS's: `ecs-execute-command-` and 17 hex
/// digits).
pub const SESSION_PREFIX: &str = "ecs-execute-command-";

/// A terminal's size, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSize {
    /// Columns (width).
    pub cols: u16,
    /// Rows (height).
    pub rows: u16,
}

/// How a client runs the command: the query of its stream's `GET`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Allocate a pseudo-terminal (`tty=true`): stdout and stderr come as one stream, as from a
    /// terminal, and the size applies.
    pub tty: bool,
    /// Attach the command's stdin (`stdin=true`): the client's stdin frames reach it; without
    /// it the command reads end of file at once.
    pub stdin: bool,
    /// The terminal's size at the start (`cols=N&rows=N`).
    pub size: Option<TermSize>,
}

impl StreamOptions {
    /// The query string (`tty=true&stdin=false&cols=80&rows=24`).
    pub fn to_query(&self) -> String {
        let mut q = format!("tty={}&stdin={}", self.tty, self.stdin);
        if let Some(s) = self.size {
            q.push_str(&format!("&cols={}&rows={}", s.cols, s.rows));
        }
        q
    }

    /// Reads the options from `param` (a query lookup); an unknown value is an error naming it.
    pub fn from_query(param: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let flag = |name: &str| match param(name).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(format!("{name} must be true or false, not '{other}'")),
        };
        let number = |name: &str| {
            param(name)
                .map(|v| {
                    v.parse::<u16>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("{name} must be a number from 1 to 65535"))
                })
                .transpose()
        };
        let size = match (number("cols")?, number("rows")?) {
            (Some(cols), Some(rows)) => Some(TermSize { cols, rows }),
            (None, None) => None,
            _ => return Err("cols and rows go together".into()),
        };
        Ok(StreamOptions {
            tty: flag("tty")?,
            stdin: flag("stdin")?,
            size,
        })
    }
}

/// What the server asks the agent to run (`ServerMessage::Exec`): the agent checks the task is
/// one it runs with `enableExecuteCommand` and the container runs, then dials back to
/// [`AGENT_PATH`]`/<id>` with the nonce and runs the command there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecOrder {
    /// The exec's id, named in the dial-back's path.
    pub id: String,
    /// Proves the dial-back comes from the agent told (printed as `***`).
    pub nonce: SecretText,
    /// The task.
    pub task_arn: String,
    /// The container, by its name in the task definition.
    pub container_name: String,
    /// The command, as words.
    pub argv: Vec<String>,
    /// How the client runs it.
    pub options: StreamOptions,
}

/// What a replica asks the replica that holds the agent's session (the first message on
/// [`RELAY_PATH`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayRequest {
    /// The task's cluster (its record's).
    pub cluster: String,
    /// The task id.
    pub task_id: String,
    /// The container.
    pub container_name: String,
    /// The command, as words.
    pub argv: Vec<String>,
    /// How the client runs it.
    pub options: StreamOptions,
}

/// One message of an exec stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes for the command's stdin (client to agent).
    Stdin(Vec<u8>),
    /// Bytes the command wrote to stdout (or to its terminal).
    Stdout(Vec<u8>),
    /// Bytes the command wrote to stderr (never with a terminal).
    Stderr(Vec<u8>),
    /// The command could not run, or the stream broke: why. Ends the stream.
    Error(String),
    /// The client's terminal changed size.
    Resize(TermSize),
    /// The command ended with this exit code. Ends the stream.
    Exit(i32),
    /// The client's stdin ended.
    StdinEnd,
}

/// A frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// An empty message.
    #[error("an empty exec frame")]
    Empty,
    /// A channel byte no frame has.
    #[error("unknown exec frame channel {0}")]
    UnknownChannel(u8),
    /// A payload of the wrong length for its channel.
    #[error("exec frame on channel {channel}: {len} bytes of payload, expected {expected}")]
    BadLength {
        /// The channel.
        channel: u8,
        /// The payload's length.
        len: usize,
        /// What the channel carries.
        expected: usize,
    },
    /// An error message that is not UTF-8.
    #[error("an exec error frame that is not UTF-8")]
    NotUtf8,
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const EXIT: u8 = 5;
const STDIN_END: u8 = 6;

impl Frame {
    /// The frame as one binary WebSocket message.
    pub fn encode(&self) -> Vec<u8> {
        let with = |channel: u8, payload: &[u8]| {
            let mut v = Vec::with_capacity(1 + payload.len());
            v.push(channel);
            v.extend_from_slice(payload);
            v
        };
        match self {
            Frame::Stdin(b) => with(STDIN, b),
            Frame::Stdout(b) => with(STDOUT, b),
            Frame::Stderr(b) => with(STDERR, b),
            Frame::Error(m) => with(ERROR, m.as_bytes()),
            Frame::Resize(s) => {
                let mut p = s.cols.to_be_bytes().to_vec();
                p.extend_from_slice(&s.rows.to_be_bytes());
                with(RESIZE, &p)
            }
            Frame::Exit(code) => with(EXIT, &code.to_be_bytes()),
            Frame::StdinEnd => vec![STDIN_END],
        }
    }

    /// Reads one binary WebSocket message.
    pub fn decode(message: &[u8]) -> Result<Frame, FrameError> {
        let (&channel, payload) = message.split_first().ok_or(FrameError::Empty)?;
        let exact = |expected: usize| {
            if payload.len() == expected {
                Ok(())
            } else {
                Err(FrameError::BadLength {
                    channel,
                    len: payload.len(),
                    expected,
                })
            }
        };
        Ok(match channel {
            STDIN => Frame::Stdin(payload.to_vec()),
            STDOUT => Frame::Stdout(payload.to_vec()),
            STDERR => Frame::Stderr(payload.to_vec()),
            ERROR => {
                Frame::Error(String::from_utf8(payload.to_vec()).map_err(|_| FrameError::NotUtf8)?)
            }
            RESIZE => {
                exact(4)?;
                Frame::Resize(TermSize {
                    cols: u16::from_be_bytes([payload[0], payload[1]]),
                    rows: u16::from_be_bytes([payload[2], payload[3]]),
                })
            }
            EXIT => {
                exact(4)?;
                Frame::Exit(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))
            }
            STDIN_END => {
                exact(0)?;
                Frame::StdinEnd
            }
            other => return Err(FrameError::UnknownChannel(other)),
        })
    }

    /// Whether the frame ends the stream (an exit code or an error).
    pub fn is_final(&self) -> bool {
        matches!(self, Frame::Exit(_) | Frame::Error(_))
    }
}

/// Why a command string could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nothing but blanks.
    #[error("The command is empty.")]
    Empty,
    /// A quote opened and never closed.
    #[error("The command has an unterminated {0} quote.")]
    Unterminated(&'static str),
    /// A backslash at the very end.
    #[error("The command ends with a lone backslash.")]
    TrailingBackslash,
}

/// Splits ECS's `command` string into words as a POSIX shell does, without expanding anything:
/// blanks separate words; `'...'` is literal; inside `"..."` a backslash escapes only `"`, `\`,
/// `$`, `` ` `` and a newline; elsewhere a backslash makes the next character literal. Pipes,
/// redirections and variables are not interpreted: run `sh -c '...'` for them.
pub fn split_command(command: &str) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (so `''` gives an empty word).
    let mut started = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(CommandError::Unterminated("single")),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(CommandError::Unterminated("double")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(CommandError::Unterminated("double")),
                    }
                }
            }
            '\\' => {
                started = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err(CommandError::TrailingBackslash),
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    if words.is_empty() {
        return Err(CommandError::Empty);
    }
    Ok(words)
}

/// Joins words into one command string that [`split_command`] splits back into exactly them:
/// a word of only safe characters as it is, any other in single quotes (a `'` in it written
/// `'\''`).
pub fn join_command<S: AsRef<str>>(words: &[S]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    words
        .iter()
        .map(|w| {
            let w = w.as_ref();
            if !w.is_empty() && w.chars().all(safe) {
                w.to_string()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_have_a_channel_byte_then_the_payload() {
        assert_eq!(Frame::Stdout(b"hi".to_vec()).encode(), b"\x01hi");
        assert_eq!(Frame::Stderr(vec![]).encode(), b"\x02");
        assert_eq!(
            Frame::Resize(TermSize {
                cols: 300,
                rows: 40
            })
            .encode(),
            vec![4, 1, 44, 0, 40]
        );
        assert_eq!(Frame::Exit(-1).encode(), vec![5, 255, 255, 255, 255]);
        assert_eq!(Frame::Exit(3).encode(), vec![5, 0, 0, 0, 3]);
        assert_eq!(Frame::StdinEnd.encode(), vec![6]);
        assert_eq!(Frame::Error("no".into()).encode(), b"\x03no");
    }

    #[test]
    fn bad_frames_are_refused_not_guessed() {
        assert_eq!(Frame::decode(b""), Err(FrameError::Empty));
        assert_eq!(Frame::decode(b"\x09x"), Err(FrameError::UnknownChannel(9)));
        assert_eq!(
            Frame::decode(&[5, 0, 0]),
            Err(FrameError::BadLength {
                channel: 5,
                len: 2,
                expected: 4
            })
        );
        assert!(matches!(
            Frame::decode(&[4, 0, 1, 0, 1, 9]),
            Err(FrameError::BadLength { .. })
        ));
        assert!(matches!(
            Frame::decode(&[6, 0]),
            Err(FrameError::BadLength { .. })
        ));
        assert_eq!(Frame::decode(&[3, 0xff]), Err(FrameError::NotUtf8));
        assert!(Frame::Exit(0).is_final() && Frame::Error(String::new()).is_final());
        assert!(!Frame::Stdout(vec![]).is_final());
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            bytes.clone().prop_map(Frame::Stdin),
            bytes.clone().prop_map(Frame::Stdout),
            bytes.prop_map(Frame::Stderr),
            ".*".prop_map(Frame::Error),
            (any::<u16>(), any::<u16>())
                .prop_map(|(cols, rows)| Frame::Resize(TermSize { cols, rows })),
            any::<i32>().prop_map(Frame::Exit),
            Just(Frame::StdinEnd),
        ]
    }

    proptest! {
        #[test]
        fn every_frame_decodes_to_itself(f in frame()) {
            prop_assert_eq!(Frame::decode(&f.encode()), Ok(f));
        }

        #[test]
        fn joined_words_split_back_into_the_same_words(
            words in proptest::collection::vec(".*", 1..6)
        ) {
            prop_assert_eq!(split_command(&join_command(&words)), Ok(words));
        }

        #[test]
        fn splitting_never_panics(s in ".*") {
            let _ = split_command(&s);
        }
    }

    #[test]
    fn commands_split_as_a_shell_splits_them() {
        let split = |s: &str| split_command(s).unwrap();
        assert_eq!(split("/bin/sh"), ["/bin/sh"]);
        assert_eq!(split("  ls   -la /tmp "), ["ls", "-la", "/tmp"]);
        assert_eq!(
            split("sh -c 'echo out; echo err >&2; exit 3'"),
            ["sh", "-c", "echo out; echo err >&2; exit 3"]
        );
        assert_eq!(
            split(r#"echo "a \"b\" \$HOME \n""#),
            ["echo", r#"a "b" $HOME \n"#]
        );
        assert_eq!(split(r"a\ b c\\d"), ["a b", r"c\d"]);
        assert_eq!(split("x '' y"), ["x", "", "y"]);
        assert_eq!(split(r"'it'\''s'"), ["it's"]);
        assert_eq!(split(r#"don"'"t"#), ["don't"]);
        assert_eq!(split_command("   "), Err(CommandError::Empty));
        assert_eq!(
            split_command("echo 'x"),
            Err(CommandError::Unterminated("single"))
        );
        assert_eq!(
            split_command("echo \"x"),
            Err(CommandError::Unterminated("double"))
        );
        assert_eq!(
            split_command("echo x\\"),
            Err(CommandError::TrailingBackslash)
        );
        assert_eq!(
            join_command(&["sh", "-c", "echo it's"]),
            r"sh -c 'echo it'\''s'"
        );
        assert_eq!(join_command(&["a", ""]), "a ''");
    }

    #[test]
    fn stream_options_travel_in_the_query() {
        let o = StreamOptions {
            tty: true,
            stdin: true,
            size: Some(TermSize {
                cols: 120,
                rows: 33,
            }),
        };
        let q = o.to_query();
        assert_eq!(q, "tty=true&stdin=true&cols=120&rows=33");
        let lookup = |q: String| {
            move |k: &str| {
                q.split('&').find_map(|p| {
                    p.split_once('=')
                        .filter(|(n, _)| *n == k)
                        .map(|(_, v)| v.to_string())
                })
            }
        };
        assert_eq!(StreamOptions::from_query(lookup(q)), Ok(o));
        assert_eq!(
            StreamOptions::from_query(lookup(String::new())),
            Ok(StreamOptions::default())
        );
        assert!(StreamOptions::from_query(lookup("tty=yes".into())).is_err());
        assert!(StreamOptions::from_query(lookup("cols=80".into())).is_err());
        assert!(StreamOptions::from_query(lookup("cols=0&rows=3".into())).is_err());
    }
}
