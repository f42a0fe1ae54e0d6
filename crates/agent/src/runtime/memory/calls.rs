//! What a test can observe of, and inject into, the in-memory runtime: the calls it received
//! ([`Call`]) and the operations an error can be injected into ([`Op`]).

use crate::runtime::Signal;
use std::time::Duration;

/// An operation of the [`Runtime`] trait, to inject an error into ([`MemoryRuntime::inject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`Runtime::version`].
    Version,
    /// [`Runtime::inspect_image`].
    InspectImage,
    /// [`Runtime::pull`].
    Pull,
    /// [`Runtime::create`].
    Create,
    /// [`Runtime::start`].
    Start,
    /// [`Runtime::stop`].
    Stop,
    /// [`Runtime::kill`].
    Kill,
    /// [`Runtime::inspect`].
    Inspect,
    /// [`Runtime::list`].
    List,
    /// [`Runtime::remove`].
    Remove,
    /// [`Runtime::create_volume`].
    CreateVolume,
    /// [`Runtime::create_network`].
    CreateNetwork,
    /// [`Runtime::exec_create`].
    ExecCreate,
}

/// A call the runtime received (the calls that change something).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// An image pull, and the user name of the credentials that came with it.
    Pull {
        /// The image reference.
        image: String,
        /// The user name of the credentials given (never the password), if any.
        user: Option<String>,
    },
    /// A container created under this name.
    Create {
        /// Its name.
        name: String,
    },
    /// A container started.
    Start {
        /// Its name.
        name: String,
    },
    /// A stop with its timeout.
    Stop {
        /// The container's name.
        name: String,
        /// The timeout before SIGKILL.
        timeout: Duration,
    },
    /// A signal sent.
    Kill {
        /// The container's name.
        name: String,
        /// The signal.
        signal: Signal,
    },
    /// A container removed.
    Remove {
        /// Its name.
        name: String,
    },
    /// An image removed.
    RemoveImage {
        /// The image reference.
        image: String,
    },
    /// A network created.
    CreateNetwork {
        /// Its name.
        name: String,
    },
    /// An exec created in a container.
    Exec {
        /// The container's name.
        name: String,
        /// The command.
        argv: Vec<String>,
    },
}
