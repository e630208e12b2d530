//! Behind a proxy (issue 18, D6): a machine that reaches the package index
//! only through the model's proxy (tinyproxy from Debian, on loopback; the
//! machine's own resolver sends the index's hosts to a closed port). The
//! charm passes `juju-https-proxy` (Juju exports it as
//! JUJU_CHARM_HTTPS_PROXY) to uv; without the setting the status names the
//! failure.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Model, app_tarball, eventually, get, repo};

const PROXY_PORT: u16 = 18930;

struct Proxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Proxy {
    fn start(dir: &std::path::Path) -> Proxy {
        let log = dir.join("tinyproxy.log");
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(&log, "").unwrap();
        // tinyproxy drops to nobody: it must be able to write its log.
        std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        std::fs::write(
            &conf,
            format!(
                "Port {PROXY_PORT}\nListen 127.0.0.1\nAllow 127.0.0.1\nUser nobody\nGroup nogroup\nTimeout 60\nMaxClients 50\nLogFile \"{}\"\nLogLevel Connect\nConnectPort 443\nConnectPort 80\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/tinyproxy")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy (scripts/lib/install-deps installs it)");
        assert!(
            eventually(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                PROXY_PORT
            ))
            .is_ok()),
            "tinyproxy did not listen"
        );
        Proxy { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs root, systemd-nspawn and the test servers (scripts/lib/install-deps): cargo test --features e2e"
)]
fn installs_go_through_the_models_proxy_and_fail_clearly_without_it() {
    crate::support::require_e2e();
    const PORT: u16 = 18931;
    let m = Model::new("wsgi-proxy-");
    let proxy = Proxy::start(m.tmp.path());
    let args = Model::deploy_args("hello", None, &[&format!("port={PORT}")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    m.ok(&args);
    // The direct route: the index's hosts resolve, in the machine only, to
    // a port where nothing listens (the proxy, on the host, resolves them).
    let (code, _, err) = m.exec(&[
        "sh",
        "-c",
        "printf '127.0.0.9 pypi.org files.pythonhosted.org\\n' >> /etc/hosts",
    ]);
    assert_eq!(code, 0, "{err}");
    let tar = app_tarball(
        &repo().join("examples/hello"),
        &[("requirements.txt", "six\n")],
        &m.tmp.path().join("hello.tar.gz"),
    );
    m.ok(&["attach-resource", &format!("app={}", tar.display())]);
    let st = m.unit_status();
    assert!(
        st.contains("blocked") && st.contains("installing requirements failed"),
        "without the proxy setting the status names the failure: {st}"
    );
    assert!(!proxy.log().contains("pypi.org"), "{}", proxy.log());

    let url = format!("http://127.0.0.1:{PROXY_PORT}");
    m.ok(&[
        "model-config",
        &format!("juju-http-proxy={url}"),
        &format!("juju-https-proxy={url}"),
    ]);
    // Juju runs no hook for a model-config change; the next one sees it.
    m.ok(&["hook", "config-changed"]);
    let st = m.unit_status();
    assert!(st.contains("active"), "{st}\n{}", m.log());
    assert_eq!(get(PORT, "/"), (200, "Hello, World!\n".into()));
    let log = proxy.log();
    assert!(
        log.contains("pypi.org") && log.contains("files.pythonhosted.org"),
        "the proxy saw no request to the index: {log}"
    );
}
