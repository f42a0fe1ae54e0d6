//! `flotilla token ...`: the operator's join tokens, with which agents join a cluster (or the
//! managed pool) without API keys (`flotilla agent --join-token TOKEN`).
//!
//! `create` prints the token once (the server keeps only a hash of its secret); `list` shows
//! every token's state (ACTIVE, EXPIRED, REVOKED) and how many agents joined with it; `revoke`
//! stops it admitting agents (those that joined keep their own credentials until their instance
//! is deregistered). Each calls one of Flotilla's own operations (`FlotillaAdmin.CreateJoinToken`,
//! `ListJoinTokens`, `RevokeJoinToken`), signed like any ECS call.

use crate::verbs::{print_table, s, when, Output};
use serde_json::{json, Value};

/// `flotilla token` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a join token for a cluster (--cluster) or the managed pool (--managed) and print
    /// it (only now: the server keeps a hash of it).
    Create(CreateArgs),
    /// List join tokens (never their secrets).
    List(ListArgs),
    /// Revoke a join token: no agent joins with it any more.
    Revoke(RevokeArgs),
}

/// Flags of `token create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The cluster agents join with the token.
    #[arg(long, required_unless_present = "managed")]
    cluster: Option<String>,
    /// Join the managed pool (the hosts that run Fargate tasks) instead of a cluster.
    #[arg(long, conflicts_with = "cluster")]
    managed: bool,
    /// How long the token admits agents: 90s, 30m, 24h, 7d, or 0 for never.
    #[arg(long, default_value = "24h")]
    ttl: String,
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// Flags of `token list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// Flags of `token revoke`.
#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    /// The token's id (`fjt-...`, as `token list` shows it) or the whole token.
    id: String,
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

fn cluster_cell(t: &Value) -> String {
    if t["managed"].as_bool() == Some(true) {
        "(managed pool)".to_string()
    } else {
        s(&t["cluster"])
    }
}

fn expires_cell(t: &Value) -> String {
    if t["expiresAt"].is_null() {
        "never".to_string()
    } else {
        when(&t["expiresAt"])
    }
}

fn rows(tokens: &[Value]) -> Vec<Vec<String>> {
    tokens
        .iter()
        .map(|t| {
            vec![
                s(&t["id"]),
                cluster_cell(t),
                s(&t["state"]),
                when(&t["createdAt"]),
                expires_cell(t),
                s(&t["joins"]),
            ]
        })
        .collect()
}

const HEADERS: [&str; 6] = ["ID", "CLUSTER", "STATE", "CREATED", "EXPIRES", "JOINS"];

/// Runs a `flotilla token` subcommand.
pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(args) => {
            let client = args.endpoint.client()?;
            let out = client
                .call_admin(
                    "CreateJoinToken",
                    json!({
                        "cluster": args.cluster,
                        "managed": args.managed,
                        "ttl": args.ttl,
                    }),
                )
                .await?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
                Output::Table => {
                    print_table(&HEADERS, &rows(std::slice::from_ref(&out)));
                    println!();
                    println!("Join token (shown only now; keep it secret):");
                    println!("  {}", s(&out["token"]));
                    println!();
                    println!("Start an agent with it:");
                    println!(
                        "  flotilla agent --server URL --join-token {}",
                        s(&out["token"])
                    );
                }
            }
            Ok(())
        }
        TokenCommand::List(args) => {
            let client = args.endpoint.client()?;
            let out = client.call_admin("ListJoinTokens", json!({})).await?;
            let tokens = out["tokens"].as_array().cloned().unwrap_or_default();
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
                Output::Table if tokens.is_empty() => {
                    println!("No join token. Create one with `flotilla token create --cluster C`.")
                }
                Output::Table => print_table(&HEADERS, &rows(&tokens)),
            }
            Ok(())
        }
        TokenCommand::Revoke(args) => {
            let client = args.endpoint.client()?;
            let out = client
                .call_admin("RevokeJoinToken", json!({"id": args.id}))
                .await?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
                Output::Table => {
                    print_table(&HEADERS, &rows(std::slice::from_ref(&out["token"])));
                    println!("Revoked: no agent joins with it any more (agents that joined keep their credentials until their instance is deregistered).");
                }
            }
            Ok(())
        }
    }
}
