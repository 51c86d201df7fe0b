//! `podium-sandbox`: parses the command line, binds, prints `{"listening":…}` and serves
//! until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use podium_sandbox::config::{self, ConfigFile};
use podium_sandbox::Sandbox;

/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn run() -> Result<(), String> {
    let env_port = std::env::var("SANDBOX_PORT").ok();
    let cli = config::parse_args(std::env::args().skip(1), env_port.as_deref())?;
    if cli.help {
        let _ = writeln!(std::io::stdout().lock(), "{}", config::USAGE);
        return Ok(());
    }
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("config {path}: {e}"))?;
            Some(ConfigFile::parse(&text)?)
        }
        None => None,
    };
    let (seeds, settings) = config::build(&cli, file)?;
    let listener = tokio::net::TcpListener::bind((cli.host.as_str(), cli.port))
        .await
        .map_err(|e| format!("bind {}:{}: {e}", cli.host, cli.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let line = serde_json::json!({ "listening": format!("http://{addr}") });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(out);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(podium_sandbox::serve(
        listener,
        Sandbox::new(seeds, settings),
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::select! {
        () = shutdown_signal() => {},
        res = &mut server => {
            return match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("server: {e}")),
                Err(e) => Err(format!("server task: {e}")),
            };
        }
    }
    podium_sandbox::gate::log_line(&serde_json::json!({ "shutdown": "signal received" }));
    let _ = stop_tx.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) | Err(_) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("server: {e}")),
        Ok(Err(e)) => Err(format!("server task: {e}")),
    }
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "podium-sandbox: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "podium-sandbox: {e}");
            ExitCode::from(2)
        }
    }
}
