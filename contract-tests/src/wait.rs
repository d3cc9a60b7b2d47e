//! Polling helpers for tests and simulators: wait for something to become true, with a bound.

use std::future::Future;
use std::time::Duration;

/// Polls `check` every 20 ms until it yields a value or `within` passes.
pub async fn wait_until<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `f` holds or `within` passes; whether it held.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    wait_until(within, || std::future::ready(f().then_some(())))
        .await
        .is_some()
}
