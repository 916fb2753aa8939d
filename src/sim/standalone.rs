//! `megascaler sim`: the simulator on its own.
//!
//! Owns starting the simulator on a chosen address with an optional webhook target, printing
//! what a script needs to use it (`github_url=` and `pat=` lines on stdout), and running until
//! Ctrl-C or SIGTERM. Scripts drive it through the `/_sim/` HTTP API.

use super::{SimConfig, Simulator, WebhookTarget};
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;

/// Flags of `megascaler sim`.
#[derive(Debug, Clone)]
pub struct Options {
    pub address: String,
    pub webhook_url: Option<String>,
    pub secret: Option<String>,
}

/// The configuration the flags describe.
pub fn config(options: &Options) -> anyhow::Result<(SimConfig, SocketAddr)> {
    let address: SocketAddr = options
        .address
        .parse()
        .with_context(|| format!("--address {:?} is not HOST:PORT", options.address))?;
    let webhook = match &options.webhook_url {
        Some(url) => Some(WebhookTarget {
            url: url
                .parse()
                .with_context(|| format!("--webhook-url {url:?} is not a URL"))?,
            secret: options.secret.clone().unwrap_or_default(),
        }),
        None => None,
    };
    Ok((
        SimConfig {
            webhook,
            ..SimConfig::default()
        },
        address,
    ))
}

/// Runs the simulator until interrupted.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let (cfg, address) = config(&options)?;
    if !address.ip().is_loopback() {
        // The `/_sim/` control API has no authentication by design.
        eprintln!(
            "megascaler sim: WARNING: listening on {address}, not loopback: anyone who can reach it can \
             drive the simulator through its unauthenticated /_sim/ API"
        );
        tracing::warn!(%address, "simulator listening beyond loopback");
    }
    let sim = Simulator::start_at(cfg, address).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "github_url={}", sim.base_url())?;
        writeln!(out, "api_url={}", sim.api_url())?;
        // The simulator's PAT is not a credential anywhere else; scripts need it.
        writeln!(out, "pat={}", sim.pat())?;
        writeln!(out, "control={}_sim/", sim.base_url())?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    sim.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_a_config() {
        let (cfg, addr) = config(&Options {
            address: "127.0.0.1:0".into(),
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            secret: Some("s".into()),
        })
        .unwrap();
        assert_eq!(addr.port(), 0);
        assert_eq!(cfg.webhook.unwrap().secret, "s");
        assert!(
            config(&Options {
                address: "nope".into(),
                webhook_url: None,
                secret: None
            })
            .is_err()
        );
    }
}
