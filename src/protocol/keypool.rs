//! A pool of ready RSA-2048 runner keys, refilled in the background on blocking threads.
//!
//! Owns key generation scheduling: generation is CPU-heavy, so it never runs on an async worker
//! thread, and a burst of registrations is served from keys made while megascaler was idle.
//! When the pool is empty, callers generate on blocking threads, at most one per CPU at a time.

use super::crypto::{CryptoError, RunnerKey};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct KeyPool {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Mutex<VecDeque<RunnerKey>>,
    target: usize,
    filling: AtomicBool,
    generated: AtomicU64,
    served_from_pool: AtomicU64,
    cpu: Semaphore,
}

impl std::fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPool")
            .field("available", &self.available())
            .field("target", &self.inner.target)
            .finish()
    }
}

impl KeyPool {
    /// A pool that keeps `target` keys ready. Filling starts at [`KeyPool::start`] or the first
    /// [`KeyPool::take`].
    pub fn new(target: usize) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        KeyPool {
            inner: Arc::new(Inner {
                keys: Mutex::new(VecDeque::with_capacity(target)),
                target,
                filling: AtomicBool::new(false),
                generated: AtomicU64::new(0),
                served_from_pool: AtomicU64::new(0),
                cpu: Semaphore::new(cpus.max(1)),
            }),
        }
    }

    /// Starts filling in the background (needs a tokio runtime; does nothing otherwise).
    pub fn start(&self) {
        self.refill();
    }

    /// Keys ready now.
    pub fn available(&self) -> usize {
        self.inner.keys.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// Keys generated so far, and keys served from the pool without waiting.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.inner.generated.load(Ordering::Relaxed),
            self.inner.served_from_pool.load(Ordering::Relaxed),
        )
    }

    /// A key: from the pool when one is ready, else freshly generated on a blocking thread.
    pub async fn take(&self) -> Result<RunnerKey, CryptoError> {
        let ready = self.inner.keys.lock().ok().and_then(|mut k| k.pop_front());
        self.refill();
        if let Some(k) = ready {
            self.inner.served_from_pool.fetch_add(1, Ordering::Relaxed);
            return Ok(k);
        }
        generate(&self.inner).await
    }

    /// Waits until the pool holds `target` keys (benchmarks warm it up with this).
    pub async fn fill_now(&self) -> Result<(), CryptoError> {
        while self.available() < self.inner.target {
            let k = generate(&self.inner).await?;
            if let Ok(mut keys) = self.inner.keys.lock() {
                keys.push_back(k);
            }
        }
        Ok(())
    }

    fn refill(&self) {
        if self.available() >= self.inner.target {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        rt.spawn(async move {
            loop {
                let len = inner.keys.lock().map(|k| k.len()).unwrap_or(usize::MAX);
                if len >= inner.target {
                    break;
                }
                match generate(&inner).await {
                    Ok(k) => {
                        if let Ok(mut keys) = inner.keys.lock() {
                            keys.push_back(k);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "key pool: generation failed");
                        break;
                    }
                }
            }
            inner.filling.store(false, Ordering::Release);
        });
    }
}

async fn generate(inner: &Arc<Inner>) -> Result<RunnerKey, CryptoError> {
    let _permit = inner
        .cpu
        .acquire()
        .await
        .map_err(|_| CryptoError::KeyGeneration)?;
    let key = tokio::task::spawn_blocking(RunnerKey::generate)
        .await
        .map_err(|_| CryptoError::KeyGeneration)??;
    inner.generated.fetch_add(1, Ordering::Relaxed);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_from_the_pool_and_refills() {
        let pool = KeyPool::new(2);
        pool.fill_now().await.unwrap();
        assert_eq!(pool.available(), 2);
        let _a = pool.take().await.unwrap();
        let _b = pool.take().await.unwrap();
        let _c = pool.take().await.unwrap();
        let (generated, served) = pool.stats();
        assert_eq!(served, 2);
        assert!(generated >= 3);
    }
}
