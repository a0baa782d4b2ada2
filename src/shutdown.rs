//! The stop signal every long-lived task of Switchyard listens to.
//!
//! One [`Shutdown`] belongs to a running configuration (the runtime makes it); each listener
//! gets a [`Shutdown::child`] of it, so a listener that a reload removes can be stopped alone
//! while a process shutdown stops them all. Accept loops, the admin listener, certificate
//! watchers and the demo backends wait on [`Shutdown::stopped`] in their `select!`; once it
//! fires they stop accepting and drain what they hold within their grace period.
//!
//! A thin wrapper over tokio-util's `CancellationToken` (the tokio project's own tree of stop
//! signals): a signal fires once and stays fired, a child fires with its parent, and checking
//! it is one atomic load.

use tokio_util::sync::CancellationToken;

/// A stop signal that can be cloned into any number of tasks and fired once.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A new signal, not fired.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A signal that fires when this one does, and can also be fired alone (firing it
    /// leaves this one as it is).
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
        }
    }

    /// Fire the signal: every [`Shutdown::stopped`] of it and of its children resolves.
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Whether the signal has fired.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the signal has fired (at once if it already has).
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_fires_with_its_parent_and_alone() {
        let parent = Shutdown::new();
        let a = parent.child();
        let b = parent.child();
        a.stop();
        a.stopped().await;
        assert!(a.is_stopped());
        assert!(!parent.is_stopped() && !b.is_stopped(), "one child alone");
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.stopped().await }
        });
        parent.stop();
        waiting.await.unwrap();
        assert!(b.is_stopped() && parent.is_stopped());
        // A child made after the parent fired is fired already.
        assert!(parent.child().is_stopped());
    }
}
