//! `flotilla fargate ...`: operator verbs for the capacity Flotilla manages for Fargate.
//!
//! `reclaim-spot` takes FARGATE_SPOT capacity back, as AWS does when it needs Spot capacity:
//! each interrupted task gets the two-minute warning (SIGTERM now, SIGKILL when the server's
//! `--spot-warning-seconds` run out) and stops with stopCode `SpotInterruption`; a service
//! replaces its tasks. It calls Flotilla's own `FlotillaAdmin.ReclaimSpot` operation, signed
//! like any ECS call.

use crate::verbs::{print_table, Output};
use serde_json::{json, Value};

/// `flotilla fargate` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum FargateCommand {
    /// Interrupt running FARGATE_SPOT tasks (all of them, or --count of them, oldest first),
    /// as a Spot reclaim does: SIGTERM, the warning window, then stopCode SpotInterruption.
    ReclaimSpot(ReclaimArgs),
}

/// Flags of `fargate reclaim-spot`.
#[derive(clap::Args, Debug)]
pub struct ReclaimArgs {
    /// Only this cluster's Spot tasks [default: every cluster].
    #[arg(long)]
    cluster: Option<String>,
    /// How many tasks to interrupt [default: all].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    #[command(flatten)]
    endpoint: crate::client::EndpointArgs,
    /// `table` for people, `json` for scripts.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

/// Runs a `flotilla fargate` subcommand.
pub async fn run(cmd: FargateCommand) -> anyhow::Result<()> {
    match cmd {
        FargateCommand::ReclaimSpot(args) => {
            let client = args.endpoint.client()?;
            let out = client
                .call_admin(
                    "ReclaimSpot",
                    json!({"cluster": args.cluster, "count": args.count}),
                )
                .await?;
            let tasks: Vec<String> = out["tasks"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
                Output::Table if tasks.is_empty() => {
                    println!("No running FARGATE_SPOT task to interrupt.")
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> = tasks
                        .iter()
                        .map(|arn| {
                            let mut parts = arn.rsplit('/');
                            let id = parts.next().unwrap_or("").to_string();
                            let cluster = parts.next().unwrap_or("").to_string();
                            vec![cluster, id]
                        })
                        .collect();
                    print_table(&["CLUSTER", "TASK"], &rows);
                    println!(
                        "{} Spot task(s) interrupted: SIGTERM sent; they stop with SpotInterruption when the warning window ends.",
                        tasks.len()
                    );
                }
            }
            Ok(())
        }
    }
}
