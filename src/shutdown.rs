//! Shutdown, in one place (as in tokio's mini-redis): one listener of the
//! process's signals, one broadcast that every task of the service waits
//! on. A task that hears it finishes what it is doing (a flush and its
//! commit, an analysis cycle, an HTTP answer) and returns; whoever started
//! it awaits it: tasks are drained, not aborted. Past the deadline, the
//! process exits without committing what is not durable.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The sending side: [`Shutdown::trigger`] tells every [`Listener`], once.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    /// Set once everything buffered is durable and committed.
    committed: Arc<std::sync::atomic::AtomicBool>,
}

/// A task's side: [`Listener::recv`] resolves once the shutdown is
/// triggered (at once if it already was).
#[derive(Clone, Debug)]
pub struct Listener {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown { tx: Arc::new(watch::channel(false).0), committed: Arc::default() }
    }

    /// A new listener (each task takes its own).
    pub fn listener(&self) -> Listener {
        Listener { rx: self.tx.subscribe() }
    }

    /// Tells every listener, present and future. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Says that everything buffered is durable and committed: what is
    /// left (an analysis cycle ending) may be cut at the deadline without
    /// losing anything.
    pub fn mark_committed(&self) {
        self.committed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_committed(&self) -> bool {
        self.committed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Listener {
    /// Resolves once the shutdown is triggered.
    pub async fn recv(&mut self) {
        // The sender lives as long as any `Shutdown` clone: an error means
        // none is left, and nothing can trigger it any more.
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The service's signal listener: at the first SIGINT or SIGTERM, triggers
/// `shutdown`. If the process is still running `deadline` later (plus half
/// a second), it exits: with code 1 when the final commit was not made,
/// with code 0 when it was and only an analysis cycle was still ending
/// (its findings.json is written whole or not at all).
pub fn on_signal(shutdown: Shutdown, deadline: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        signal().await;
        tracing::info!(deadline_ms = deadline.as_millis() as u64, "Signal received: flushing and committing");
        shutdown.trigger();
        std::thread::spawn(move || {
            std::thread::sleep(deadline + Duration::from_millis(500));
            if shutdown.is_committed() {
                eprintln!("vigie: shutdown deadline passed while an analysis was ending; everything was committed; exiting");
                std::process::exit(0);
            }
            eprintln!("vigie: shutdown deadline passed; exiting without a final commit");
            std::process::exit(1);
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_hears_the_trigger_even_one_taken_after_it() {
        let s = Shutdown::new();
        let mut before = s.listener();
        let waiting = tokio::spawn(async move {
            before.recv().await;
            before.is_shutdown()
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        s.trigger();
        assert!(waiting.await.unwrap());
        let mut after = s.listener();
        assert!(after.is_shutdown());
        tokio::time::timeout(Duration::from_secs(1), after.recv()).await.expect("resolves at once");
        // Twice is once.
        s.trigger();
        assert!(s.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_whose_shutdown_is_never_triggered_waits() {
        let s = Shutdown::new();
        let mut l = s.listener();
        assert!(tokio::time::timeout(Duration::from_secs(3600), l.recv()).await.is_err());
    }
}
