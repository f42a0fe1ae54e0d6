//! ECS Exec on the agent: runs a command the server ordered ([`ExecOrder`]) in a container of a
//! task this agent runs, and carries its streams.
//!
//! What this is: [`serve`]: dial back to the replica that holds this agent's session
//! ([`flotilla_protocol::exec::AGENT_PATH`]`/<id>`, SigV4-signed, with the order's nonce), then
//! create the exec in the runtime, start it attached, and pump [`Frame`]s: stdin (and its end)
//! and terminal resizes from the client to the command, its stdout and stderr (one stream with
//! a terminal) back, and at the end its exit code (inspected) or why it could not run. Stdin is
//! written by a task of its own, so a command that does not read never holds up its output.
//!
//! What this is not: a judge of who may exec. The server checked the caller and the task
//! (`enableExecuteCommand`, the container's agent RUNNING); this agent checks again only what
//! it knows better: that it runs the task, with `enableExecuteCommand`, and the container runs
//! ([`crate::engine::Engine::exec_target`]). A client that leaves ends the stream; the command
//! then reads end of file on its stdin, as with `docker exec`.

use crate::client::EcsClient;
use crate::runtime::{ExecSpec, OutputStream, Runtime};
use crate::session::{connect_signed, uri_encode, Ws};
use flotilla_protocol::exec::{ExecOrder, Frame, AGENT_PATH, NONCE_HEADER};
use flotilla_protocol::INSTANCE_PARAM;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

/// How long the command's exit code may take to show after its output ended.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(10);

/// What an exec needs of the agent.
pub struct ExecContext {
    /// The API client (its credentials sign the dial-back).
    pub client: EcsClient,
    /// The replica that holds the session (and sent the order).
    pub endpoint: String,
    /// This container instance.
    pub instance_arn: String,
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
}

/// How an exec ended, short of an exit code.
enum Ended {
    /// The command ended with this code.
    Exit(i32),
    /// It could not run, or its stream broke: why (sent to the client).
    Failed(String),
    /// The client left.
    ClientGone,
}

/// Serves one order: `target` is the container's runtime id, or why the command cannot run
/// there (told to the client on the dial-back).
pub async fn serve(ctx: ExecContext, target: Result<String, String>, order: ExecOrder) {
    let query = format!("{INSTANCE_PARAM}={}", uri_encode(&ctx.instance_arn));
    let path = format!("{AGENT_PATH}/{}", uri_encode(&order.id));
    let ws = connect_signed(
        &ctx.client,
        &ctx.endpoint,
        &path,
        &query,
        &[(NONCE_HEADER, order.nonce.0.as_str())],
    )
    .await;
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            warn!(exec = %order.id, task = %order.task_arn, error = %e, "cannot dial back to the server for an exec");
            return;
        }
    };
    let ended = match target {
        Err(why) => Ended::Failed(why),
        Ok(container_id) => {
            info!(exec = %order.id, task = %order.task_arn, container = %order.container_name, tty = order.options.tty, "exec starting");
            run(&ctx, &mut ws, &container_id, &order).await
        }
    };
    let last = match ended {
        Ended::Exit(code) => {
            info!(exec = %order.id, exit_code = code, "exec ended");
            Some(Frame::Exit(code))
        }
        Ended::Failed(why) => {
            info!(exec = %order.id, reason = %why, "exec could not run");
            Some(Frame::Error(why))
        }
        Ended::ClientGone => {
            info!(exec = %order.id, "exec client left");
            None
        }
    };
    if let Some(frame) = last {
        let _ = ws.send(Message::Binary(frame.encode().into())).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

async fn run(ctx: &ExecContext, ws: &mut Ws, container_id: &str, order: &ExecOrder) -> Ended {
    let rt = &ctx.runtime;
    let spec = ExecSpec {
        argv: order.argv.clone(),
        tty: order.options.tty,
        stdin: order.options.stdin,
    };
    let exec_id = match rt.exec_create(container_id, &spec).await {
        Ok(id) => id,
        Err(e) => return Ended::Failed(e.detail()),
    };
    let streams = match rt.exec_start(&exec_id).await {
        Ok(s) => s,
        Err(e) => return Ended::Failed(e.detail()),
    };
    if let (true, Some(size)) = (spec.tty, order.options.size) {
        if let Err(e) = rt.exec_resize(&exec_id, size.cols, size.rows).await {
            debug!(error = %e, "cannot size the exec's terminal");
        }
    }
    let mut output = streams.output;
    // Stdin on its own task: a command that does not read must not hold up its output.
    let (stdin_tx, mut stdin_rx) = tokio::sync::mpsc::unbounded_channel::<Option<Vec<u8>>>();
    let mut input = streams.input;
    let writer = tokio::spawn(async move {
        while let Some(chunk) = stdin_rx.recv().await {
            let done = match chunk {
                Some(bytes) => input
                    .write_all(&bytes)
                    .await
                    .and(input.flush().await)
                    .is_err(),
                None => {
                    let _ = input.shutdown().await;
                    true
                }
            };
            if done {
                return;
            }
        }
    });
    let _writer = AbortOnDrop(writer);
    let ended = loop {
        tokio::select! {
            out = output.next() => match out {
                Some(Ok((stream, bytes))) => {
                    let frame = match stream {
                        OutputStream::Stdout => Frame::Stdout(bytes),
                        OutputStream::Stderr => Frame::Stderr(bytes),
                    };
                    if ws.send(Message::Binary(frame.encode().into())).await.is_err() {
                        break Ended::ClientGone;
                    }
                }
                Some(Err(e)) => break Ended::Failed(format!("the command's output broke: {}", e.detail())),
                None => break exit_code(rt.as_ref(), &exec_id).await,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => match Frame::decode(&b) {
                    Ok(Frame::Stdin(bytes)) if spec.stdin => { let _ = stdin_tx.send(Some(bytes)); }
                    Ok(Frame::StdinEnd) if spec.stdin => { let _ = stdin_tx.send(None); }
                    Ok(Frame::Resize(size)) if spec.tty => {
                        if let Err(e) = rt.exec_resize(&exec_id, size.cols, size.rows).await {
                            debug!(error = %e, "cannot resize the exec's terminal");
                        }
                    }
                    Ok(other) => debug!(frame = ?std::mem::discriminant(&other), "exec frame ignored"),
                    Err(e) => debug!(error = %e, "undecodable exec frame ignored"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Ended::ClientGone,
                Some(Ok(_)) => {}
            },
        }
    };
    ended
}

/// The exit code of an exec whose output ended (Docker may show it running a moment longer).
async fn exit_code(rt: &dyn Runtime, exec_id: &str) -> Ended {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
    loop {
        match rt.exec_inspect(exec_id).await {
            Ok(s) if !s.running => {
                return match s.exit_code {
                    Some(code) => Ended::Exit(i32::try_from(code).unwrap_or(if code < 0 {
                        i32::MIN
                    } else {
                        i32::MAX
                    })),
                    None => Ended::Failed("the command ended without an exit code".into()),
                }
            }
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(_) => {
                return Ended::Failed(format!(
                    "the command's output ended but it still runs after {EXIT_CODE_WAIT:?}"
                ))
            }
            Err(e) => return Ended::Failed(e.detail()),
        }
    }
}

/// Aborts the stdin writer when the exec ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
