//! What a modelled container does once started: [`Script`], read from its command the way
//! busybox would run it, and changed by a test.
//!
//! What this is not: a shell. It knows `sleep`, `exit`, `true`, `false`, `echo`, `:` and
//! `trap ... TERM`; any other command runs until stopped.

use crate::runtime::ContainerSpec;
use std::time::Duration;

/// What a container does once started; derived from its spec ([`Script::from_spec`]) and
/// changed by [`MemoryRuntime::script`].
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Exits on its own this long after each start, with this code (`None`: runs until
    /// stopped).
    pub exit: Option<(Duration, i64)>,
    /// Killed by the kernel for memory this long after each start (exit code 137, `OOMKilled`).
    pub oom_after: Option<Duration>,
    /// Whether SIGTERM ends it (exit code 143). PID 1 ignores it unless it has a handler: an
    /// init (`init`) forwards it, a shell `trap` handles it.
    pub handles_sigterm: bool,
    /// Whether its health check passes (`None`: as its command says: `exit 0`/`true` pass,
    /// `exit N`/`false` fail, anything else passes).
    pub health_passes: Option<bool>,
    /// Starting it fails with this message (Docker's start error), leaving it created.
    pub start_error: Option<String>,
    /// Memory in use while it runs, bytes.
    pub memory_bytes: u64,
}

impl Script {
    /// What busybox would do with the container's entrypoint and command.
    pub fn from_spec(spec: &ContainerSpec) -> Script {
        let mut argv: Vec<String> = spec.entrypoint.clone().unwrap_or_default();
        argv.extend(spec.command.clone().unwrap_or_default());
        let mut script = Script {
            exit: None,
            oom_after: None,
            handles_sigterm: spec.init,
            health_passes: None,
            start_error: None,
            memory_bytes: 4 << 20,
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        match argv.as_slice() {
            // The image's `sh` with no input exits at once, unless stdin stays open.
            [] | ["sh"] if !(spec.open_stdin || spec.tty) => {
                script.exit = Some((Duration::ZERO, 0))
            }
            ["sh" | "/bin/sh", "-c", line] => {
                let (exit, traps) = shell_line(line);
                script.exit = exit;
                script.handles_sigterm |= traps;
            }
            [_, ..] => script.exit = shell_line(&argv.join(" ")).0,
            [] => {}
        }
        script
    }
}

/// Reads a shell line of `;`/`&&`-separated commands: when it exits (after its sleeps, with
/// the code of `exit`, `true` or `false`), and whether it traps SIGTERM.
pub(super) fn shell_line(line: &str) -> (Option<(Duration, i64)>, bool) {
    let mut slept = Duration::ZERO;
    let mut traps = false;
    for cmd in line.split([';', '\n']).flat_map(|c| c.split("&&")) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            [] | ["echo", ..] | [":"] => {}
            ["trap", .., "TERM"] => traps = true,
            ["sleep", n] => match n.parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => slept += Duration::from_secs_f64(s),
                _ => return (None, traps),
            },
            ["exit"] | ["true"] => return (Some((slept, 0)), traps),
            ["false"] => return (Some((slept, 1)), traps),
            ["exit", code] => return (Some((slept, code.parse().unwrap_or(2))), traps),
            // Anything else (a server, a wait) runs until stopped.
            _ => return (None, traps),
        }
    }
    (Some((slept, 0)), traps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerSpec;

    fn spec(command: &[&str], init: bool) -> ContainerSpec {
        ContainerSpec {
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            init,
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn commands_read_as_busybox_runs_them() {
        let check = |command: &[&str], init: bool, exit: Option<(u64, i64)>, term: bool| {
            let s = Script::from_spec(&spec(command, init));
            let exit = exit.map(|(secs, code)| (Duration::from_secs(secs), code));
            assert_eq!((s.exit, s.handles_sigterm), (exit, term), "{command:?}");
        };
        check(&["sleep", "300"], false, Some((300, 0)), false);
        check(&["sleep", "300"], true, Some((300, 0)), true);
        check(&["sh", "-c", "exit 3"], false, Some((0, 3)), false);
        check(&["sh", "-c", "sleep 2; exit 1"], false, Some((2, 1)), false);
        check(
            &["sh", "-c", "trap 'exit 0' TERM; sleep 5 && true"],
            false,
            Some((5, 0)),
            true,
        );
        check(&["httpd", "-f", "-p", "80"], false, None, false);
        check(&["false"], false, Some((0, 1)), false);
        check(&[], false, Some((0, 0)), false);
    }
}
