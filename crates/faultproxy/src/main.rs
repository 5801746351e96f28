//! `kuryr-faultproxy --listen 127.0.0.1:19696 --upstream http://127.0.0.1:9696`: the fault
//! proxy as a process, for the soak script; rules come over `PUT /_faultproxy/rules`.

use std::net::SocketAddr;
use std::process::ExitCode;

use kuryr_faultproxy::FaultProxy;
use url::Url;

const USAGE: &str = "usage: kuryr-faultproxy --listen ADDR:PORT --upstream URL";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut listen: Option<SocketAddr> = None;
    let mut upstream: Option<Url> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(a) => listen = Some(a),
                Err(e) => return fail(&format!("--listen {v}: {e}")),
            },
            ("--upstream", Some(v)) => match Url::parse(&v) {
                Ok(u) => upstream = Some(u),
                Err(e) => return fail(&format!("--upstream {v}: {e}")),
            },
            _ => return fail(USAGE),
        }
    }
    let (Some(listen), Some(upstream)) = (listen, upstream) else {
        return fail(USAGE);
    };
    match FaultProxy::start_on(listen, upstream.clone()).await {
        Ok(proxy) => {
            eprintln!("kuryr-faultproxy: {} -> {upstream}", proxy.addr());
            proxy.run().await;
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("listening on {listen}: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("kuryr-faultproxy: {message}");
    ExitCode::FAILURE
}
