//! One control plane: etcd, kube-apiserver and kube-controller-manager on loopback.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use nix::sys::signal::Signal;

use crate::audit::{self, AuditEvent, AuditMark};
use crate::binaries::Binaries;
use crate::certs::Pki;
use crate::error::{Error, Result, io, kube as kube_err};
use crate::process::{Component, Proc, Watchdog, rss_bytes};

/// The user name (client-certificate CN) of [`ControlPlane::client`]; it is in
/// `system:masters`.
pub const ADMIN_USER: &str = "sync-test-admin";

/// The user name the controller manager acts as, so its writes are told apart in the audit log.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";

/// When set (and not `0`), planes leave their folders (logs, audit log, certificates, etcd
/// data) behind for inspection; their processes still end.
pub const KEEP_DIRS: &str = "SYNC_TEST_KEEP_DIRS";

/// How long a plane may take to answer `/readyz`: generous, since two busy cores may be
/// starting several planes and building at once.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The controller manager's log lines once the namespace controller and the garbage
/// collector run (kube-controller-manager v1.35).
const CONTROLLERS_STARTED: [&str; 2] = [
    "Starting namespace controller",
    "Garbage collector: all resource monitors have synced",
];

/// A running Kubernetes control plane of its own (etcd, kube-apiserver,
/// kube-controller-manager), or an existing cluster reached through a kubeconfig.
///
/// A started plane owns a temporary folder with its certificates, etcd data, logs and audit
/// log. Dropping it kills its processes and removes the folder; if the test process dies
/// first, even by SIGKILL, a watchdog does the same within a second.
///
/// It holds no [`kube::Client`]: a client's background task dies with the tokio runtime that
/// made it, while a plane may outlive many `#[tokio::test]` runtimes. Ask for a new client
/// with [`client`](Self::client) in each test.
#[derive(Debug)]
pub struct ControlPlane {
    name: String,
    kubeconfig: PathBuf,
    managed: Option<Managed>,
}

/// The processes and files of a plane this library started. Fields drop in order: the
/// processes die before the watchdog, and both before the folder is removed.
#[derive(Debug)]
struct Managed {
    procs: Mutex<Procs>,
    name: String,
    bins: Binaries,
    pki: Pki,
    etcd_port: u16,
    port: AtomicU16,
    admin_kubeconfig: PathBuf,
    audit_log: PathBuf,
    user_kubeconfigs: Mutex<HashMap<String, PathBuf>>,
    extra_apiserver_args: Vec<String>,
    _watchdog: Watchdog,
    dir: tempfile::TempDir,
}

/// Declared in the order they are killed on drop.
#[derive(Debug, Default)]
struct Procs {
    controller_manager: Option<Proc>,
    apiserver: Option<Proc>,
    etcd: Option<Proc>,
}

impl ControlPlane {
    /// Starts a new plane named `name` (used in its folder's name and in messages) and waits
    /// until its API server is ready.
    ///
    /// Finds or builds the binaries ([`Binaries::locate`]), makes a CA and certificates with
    /// `openssl`, starts etcd on free ports, then kube-apiserver (with an audit log of all
    /// writes), waits for `GET /readyz` to answer 200 with the admin certificate, and starts
    /// kube-controller-manager with the namespace and garbage-collector controllers.
    ///
    /// # Errors
    ///
    /// When the binaries are unavailable, a component exits, or the API server is not ready
    /// within 3 minutes. The message carries the end of the failing component's log.
    ///
    /// # Caveats
    ///
    /// The controller manager has no health endpoint; start waits for its log to say that both
    /// controllers run. Its garbage collector notices a newly installed CRD kind only on its 30-second discovery
    /// resync.
    pub async fn start(name: &str) -> Result<ControlPlane> {
        Self::start_with_apiserver_args(name, &[]).await
    }

    /// As [`start`](Self::start), with extra kube-apiserver flags (kept when the API server is
    /// restarted), e.g. `--watch-cache=false` for a fault test.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn start_with_apiserver_args(name: &str, extra: &[&str]) -> Result<ControlPlane> {
        let bins = blocking(Binaries::locate).await?;
        let owned = name.to_owned();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let managed = blocking(move || Managed::launch(&owned, bins, extra)).await?;
        managed.await_apiserver(true).await?;
        blocking(move || {
            managed.start_controller_manager()?;
            Ok(managed)
        })
        .await
        .map(|managed| ControlPlane {
            name: name.to_owned(),
            kubeconfig: managed.admin_kubeconfig.clone(),
            managed: Some(managed),
        })
    }

    /// An existing cluster reached through `kubeconfig`. Fault injection, audit and
    /// per-user clients are unavailable on it and return [`Error::External`].
    pub fn external(name: &str, kubeconfig: impl Into<PathBuf>) -> ControlPlane {
        ControlPlane {
            name: name.to_owned(),
            kubeconfig: kubeconfig.into(),
            managed: None,
        }
    }

    /// The plane's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin kubeconfig (user [`ADMIN_USER`], group `system:masters`), usable by `kubectl`
    /// and by other processes.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The plane's folder (certificates, logs, etcd data), for a started plane.
    pub fn dir(&self) -> Option<&Path> {
        self.managed.as_ref().map(|m| m.dir.path())
    }

    /// The API server's URL, for a started plane.
    pub fn server_url(&self) -> Option<String> {
        self.managed.as_ref().map(Managed::server_url)
    }

    /// A new admin client. Make one per test: never share a client across tokio runtimes.
    ///
    /// # Errors
    ///
    /// When the kubeconfig cannot be loaded.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A kubeconfig for `user` in `groups`, with a client certificate signed by the plane's
    /// CA. The user starts with no permissions beyond those of `system:authenticated`: bind it
    /// to the RBAC the test means to grant. Made once per user and groups, then reused.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster, or when openssl fails.
    pub fn kubeconfig_for_user(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        self.managed("per-user credentials")?
            .kubeconfig_for_user(user, groups)
    }

    /// A new client acting as `user` in `groups`; see
    /// [`kubeconfig_for_user`](Self::kubeconfig_for_user).
    ///
    /// # Errors
    ///
    /// As [`kubeconfig_for_user`](Self::kubeconfig_for_user).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<kube::Client> {
        let path = self.kubeconfig_for_user(user, groups)?;
        client_from_kubeconfig(&path).await
    }

    /// The API server's audit log (JSON lines): every write request at level `Metadata`.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster.
    pub fn audit_log_path(&self) -> Result<&Path> {
        Ok(&self.managed("the audit log")?.audit_log)
    }

    /// The current end of the audit log, to count only later events with
    /// [`audit_events_since`](Self::audit_events_since).
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster, or when the log cannot be read.
    pub fn audit_mark(&self) -> Result<AuditMark> {
        audit::end(self.audit_log_path()?)
    }

    /// Every completed write request since the plane started.
    ///
    /// # Errors
    ///
    /// As [`audit_mark`](Self::audit_mark).
    pub fn audit_events(&self) -> Result<Vec<AuditEvent>> {
        self.audit_events_since(&AuditMark(0))
    }

    /// The completed write requests logged after `mark`.
    ///
    /// # Guarantees
    ///
    /// The audit log is written in blocking mode: the request's own handler writes its event
    /// as it finishes, so the event is usually in the file by the time the client has the
    /// answer, but it may trail it by a moment. Wait for expected events with
    /// [`wait_for_audit`](Self::wait_for_audit).
    ///
    /// # Errors
    ///
    /// As [`audit_mark`](Self::audit_mark).
    pub fn audit_events_since(&self, mark: &AuditMark) -> Result<Vec<AuditEvent>> {
        let log = self.audit_log_path()?;
        Ok(audit::read(log, *mark)?.0)
    }

    /// Waits until the events after `mark` satisfy `done`, and returns them.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], listing the events seen, when `done` stays false for `timeout`.
    pub async fn wait_for_audit(
        &self,
        mark: &AuditMark,
        timeout: Duration,
        done: impl Fn(&[AuditEvent]) -> bool,
    ) -> Result<Vec<AuditEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.audit_events_since(mark)?;
            if done(&events) {
                return Ok(events);
            }
            if Instant::now() >= deadline {
                let observed = events
                    .iter()
                    .map(|e| {
                        format!(
                            "\n  {} {} {}/{}/{} {} -> {}",
                            e.user, e.verb, e.resource, e.namespace, e.name, e.subresource, e.code
                        )
                    })
                    .collect::<String>();
                return Err(Error::Timeout {
                    what: format!("audit events on plane {:?}", self.name),
                    after: timeout,
                    observed: format!("{} events:{observed}", events.len()),
                    tail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the API server (SIGTERM, then SIGKILL after 15 s). etcd and the controller manager
    /// keep running, so [`start_apiserver`](Self::start_apiserver) brings back every object.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster.
    ///
    /// # Caveats
    ///
    /// On a shared plane this disturbs every test using it; give fault tests a plane of their
    /// own.
    pub fn stop_apiserver(&self) -> Result<()> {
        let managed = self.managed("stopping the API server")?;
        if let Some(mut apiserver) = managed.procs().apiserver.take() {
            apiserver.stop(Duration::from_secs(15));
        }
        Ok(())
    }

    /// Starts the API server again with the same flags and port, and waits until it is ready.
    /// If it is running, only resumes it in case it is paused, and waits.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster; as [`start`](Self::start) otherwise.
    pub async fn start_apiserver(&self) -> Result<()> {
        let managed = self.managed("starting the API server")?;
        {
            let mut procs = managed.procs();
            let running = procs
                .apiserver
                .as_mut()
                .is_some_and(|p| p.exited().is_none());
            match procs.apiserver.as_ref() {
                // It may be paused.
                Some(apiserver) if running => apiserver.signal(Signal::SIGCONT)?,
                _ => procs.apiserver = Some(managed.spawn_apiserver()?),
            }
        }
        managed.await_apiserver(false).await
    }

    /// Freezes the API server with SIGSTOP: connections stay open but nothing answers, as
    /// with a network partition.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster, or when the API server is not running.
    pub fn pause_apiserver(&self) -> Result<()> {
        self.signal_apiserver("pausing the API server", Signal::SIGSTOP)
    }

    /// Lets a paused API server run again with SIGCONT.
    ///
    /// # Errors
    ///
    /// As [`pause_apiserver`](Self::pause_apiserver).
    pub fn resume_apiserver(&self) -> Result<()> {
        self.signal_apiserver("resuming the API server", Signal::SIGCONT)
    }

    /// The process id of each running component.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster.
    pub fn pids(&self) -> Result<Vec<(Component, u32)>> {
        let managed = self.managed("process ids")?;
        let procs = managed.procs();
        Ok([&procs.etcd, &procs.apiserver, &procs.controller_manager]
            .into_iter()
            .flatten()
            .map(|p| (p.component, p.pid()))
            .collect())
    }

    /// The resident memory of each running component, in bytes.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster, or when `/proc` cannot be read.
    pub fn rss_bytes(&self) -> Result<Vec<(Component, u64)>> {
        self.pids()?
            .into_iter()
            .map(|(component, pid)| Ok((component, rss_bytes(pid)?)))
            .collect()
    }

    /// Checks that every component is still running.
    ///
    /// # Errors
    ///
    /// [`Error::Exited`], with the end of its log, for the first component that exited.
    pub fn check_running(&self) -> Result<()> {
        let managed = self.managed("process checks")?;
        let procs = &mut *managed.procs();
        for proc in [
            &mut procs.etcd,
            &mut procs.apiserver,
            &mut procs.controller_manager,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(status) = proc.exited() {
                return Err(proc.exited_error(&managed.name, status));
            }
        }
        Ok(())
    }

    /// The log file of `component`.
    ///
    /// # Errors
    ///
    /// [`Error::External`] on an existing cluster.
    pub fn log_path(&self, component: Component) -> Result<PathBuf> {
        Ok(self.managed("logs")?.log(component))
    }

    fn signal_apiserver(&self, what: &'static str, signal: Signal) -> Result<()> {
        let managed = self.managed(what)?;
        let procs = managed.procs();
        let apiserver = procs
            .apiserver
            .as_ref()
            .ok_or_else(|| Error::Config(format!("{what}: it is stopped")))?;
        apiserver.signal(signal)
    }

    fn managed(&self, what: &'static str) -> Result<&Managed> {
        self.managed.as_ref().ok_or_else(|| Error::External {
            plane: self.name.clone(),
            what,
        })
    }
}

/// A new client from a kubeconfig file, by `Kubeconfig::read_from` →
/// `Config::from_custom_kubeconfig` → `Client::try_from`.
///
/// # Errors
///
/// When the file cannot be read or describes no usable cluster.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let err = |source| Error::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(err)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(err)?;
    kube::Client::try_from(config)
        .map_err(kube_err(format!("make a client from {}", path.display())))
}

impl Managed {
    /// Makes the folder, watchdog and certificates, starts etcd, and spawns the API server.
    fn launch(name: &str, bins: Binaries, extra_apiserver_args: Vec<String>) -> Result<Managed> {
        let prefix: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(30)
            .collect();
        let mut dir = tempfile::Builder::new()
            .prefix(&format!("sync-test-{prefix}-"))
            .tempdir()
            .map_err(io("make the plane folder"))?;
        let keep = std::env::var_os(KEEP_DIRS).is_some_and(|v| !v.is_empty() && v != "0");
        dir.disable_cleanup(keep);
        // First, so nothing started below can outlive the test process.
        let watchdog = Watchdog::spawn(dir.path(), keep)?;
        let pki = Pki::create(&dir.path().join("pki"))?;
        let audit_policy = dir.path().join("audit-policy.yaml");
        std::fs::write(&audit_policy, audit::POLICY).map_err(io("write the audit policy"))?;
        let mut managed = Managed {
            procs: Mutex::new(Procs::default()),
            name: name.to_owned(),
            bins,
            pki,
            etcd_port: 0,
            port: AtomicU16::new(0),
            admin_kubeconfig: dir.path().join("admin.kubeconfig"),
            audit_log: dir.path().join("audit.log"),
            user_kubeconfigs: Mutex::new(HashMap::new()),
            extra_apiserver_args,
            _watchdog: watchdog,
            dir,
        };
        managed.start_etcd()?;
        managed.port.store(free_port()?, Ordering::SeqCst);
        managed.write_admin_kubeconfig()?;
        let apiserver = managed.spawn_apiserver()?;
        managed.procs().apiserver = Some(apiserver);
        Ok(managed)
    }

    fn procs(&self) -> MutexGuard<'_, Procs> {
        // A panic while holding the lock leaves the process handles intact.
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self, component: Component) -> PathBuf {
        self.dir.path().join(format!("{}.log", component.program()))
    }

    fn pids_file(&self) -> PathBuf {
        self.dir.path().join("pids")
    }

    fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port.load(Ordering::SeqCst))
    }

    fn spawn(&self, component: Component, program: &Path, args: &[String]) -> Result<Proc> {
        Proc::spawn(
            component,
            program,
            args,
            &self.log(component),
            &self.pids_file(),
        )
    }

    /// Starts etcd on free ports, retrying when a port was taken in the meantime.
    fn start_etcd(&mut self) -> Result<()> {
        let data = self.dir.path().join("etcd-data");
        for attempt in 1..=5 {
            let (client, peer) = (free_port()?, free_port()?);
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let args = vec![
                "--name=default".to_owned(),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".to_owned(),
                "--log-level=warn".to_owned(),
            ];
            let mut etcd = self.spawn(Component::Etcd, &self.bins.etcd, &args)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = etcd.exited() {
                    if attempt < 5 && etcd.output().contains("address already in use") {
                        let _ = std::fs::remove_dir_all(&data);
                        break;
                    }
                    return Err(etcd.exited_error(&self.name, status));
                }
                let observed = match etcd_health(client) {
                    Ok(()) => {
                        self.etcd_port = client;
                        self.procs().etcd = Some(etcd);
                        return Ok(());
                    }
                    Err(e) => e,
                };
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("etcd of plane {:?} to report healthy", self.name),
                        after: Duration::from_secs(60),
                        observed,
                        tail: format!("\nlast lines of etcd.log:\n{}", etcd.tail()),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        unreachable!("the last attempt returns")
    }

    fn apiserver_args(&self) -> Vec<String> {
        let port = self.port.load(Ordering::SeqCst);
        let dir = self.dir.path();
        let pki = &self.pki;
        let path = |p: &Path| p.display().to_string();
        vec![
            format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            // Without it the apiserver fails on a host with no default route.
            "--advertise-address=127.0.0.1".to_owned(),
            // A loopback advertise address is refused by the default endpoint reconciler.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", path(&pki.serving_cert)),
            format!("--tls-private-key-file={}", path(&pki.serving_key)),
            format!("--client-ca-file={}", path(&pki.ca_cert)),
            format!("--service-account-issuer=https://127.0.0.1:{port}"),
            format!("--service-account-key-file={}", path(&pki.sa_public)),
            format!(
                "--service-account-signing-key-file={}",
                path(&pki.sa_private)
            ),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--authorization-mode=RBAC".to_owned(),
            "--allow-privileged=true".to_owned(),
            // There is no token controller to give service accounts their tokens.
            "--disable-admission-plugins=ServiceAccount".to_owned(),
            format!(
                "--audit-policy-file={}",
                dir.join("audit-policy.yaml").display()
            ),
            format!("--audit-log-path={}", self.audit_log.display()),
            "--audit-log-format=json".to_owned(),
            "--audit-log-mode=blocking".to_owned(),
            // The log rotates at this many megabytes (`0` would mean lumberjack's default,
            // 100 MB, not "never"), and rotated files are all kept: the audit reader follows
            // them. A later `--audit-log-maxsize` in the extra flags wins.
            "--audit-log-maxsize=100".to_owned(),
            "--audit-log-maxbackup=0".to_owned(),
            "--audit-log-maxage=0".to_owned(),
        ]
    }

    fn spawn_apiserver(&self) -> Result<Proc> {
        let mut args = self.apiserver_args();
        args.extend(self.extra_apiserver_args.iter().cloned());
        self.spawn(Component::ApiServer, &self.bins.kube_apiserver, &args)
    }

    fn start_controller_manager(&self) -> Result<()> {
        let kubeconfig = self.dir.path().join("controller-manager.kubeconfig");
        let pki = self.pki.dir();
        let (cert, key) = (pki.join("kcm.crt"), pki.join("kcm.key"));
        // Its own user name tells its writes apart in the audit log; system:masters because
        // without service-account credentials every controller acts as this one user.
        self.pki
            .issue_client(CONTROLLER_MANAGER_USER, &["system:masters"], &cert, &key)?;
        self.write_kubeconfig(&kubeconfig, CONTROLLER_MANAGER_USER, &cert, &key)?;
        let args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            "--controllers=namespace-controller,garbage-collector-controller".to_owned(),
            "--leader-elect=false".to_owned(),
            "--secure-port=0".to_owned(),
            "--use-service-account-credentials=false".to_owned(),
        ];
        let mut kcm = self.spawn(
            Component::ControllerManager,
            &self.bins.kube_controller_manager,
            &args,
        )?;
        // Without a health endpoint (--secure-port=0), its log tells when both controllers
        // run. Until then it exits if the API server goes away, e.g. in a fault test.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = kcm.exited() {
                return Err(kcm.exited_error(&self.name, status));
            }
            let output = kcm.output();
            let missing: Vec<_> = CONTROLLERS_STARTED
                .iter()
                .filter(|line| !output.contains(*line))
                .collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "the controller manager of plane {:?} to start its controllers",
                        self.name
                    ),
                    after: Duration::from_secs(60),
                    observed: format!("no log line {missing:?}"),
                    tail: format!("\nlast lines of {}:\n{}", kcm.log.display(), kcm.tail()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.procs().controller_manager = Some(kcm);
        Ok(())
    }

    fn write_admin_kubeconfig(&self) -> Result<()> {
        self.write_kubeconfig(
            &self.admin_kubeconfig,
            ADMIN_USER,
            &self.pki.admin_cert,
            &self.pki.admin_key,
        )
    }

    fn write_kubeconfig(&self, path: &Path, user: &str, cert: &Path, key: &Path) -> Result<()> {
        let cluster = format!("sync-test-{}", self.name);
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {
                "server": self.server_url(),
                "certificate-authority": self.pki.ca_cert,
            }}],
            "users": [{"name": user, "user": {
                "client-certificate": cert,
                "client-key": key,
            }}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
            "current-context": cluster,
        });
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| Error::Config(format!("cannot serialize a kubeconfig: {e}")))?;
        std::fs::write(path, text).map_err(io(format!("write {}", path.display())))
    }

    fn kubeconfig_for_user(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let key = format!("{user}\n{}", groups.join("\n"));
        let mut made = self
            .user_kubeconfigs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(path) = made.get(&key) {
            return Ok(path.clone());
        }
        let users = self.dir.path().join("users");
        std::fs::create_dir_all(&users).map_err(io("make the users folder"))?;
        let stem: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let stem = format!("{stem}-{}", made.len());
        let (cert, key_file) = (
            users.join(format!("{stem}.crt")),
            users.join(format!("{stem}.key")),
        );
        self.pki.issue_client(user, groups, &cert, &key_file)?;
        let path = users.join(format!("{stem}.kubeconfig"));
        self.write_kubeconfig(&path, user, &cert, &key_file)?;
        made.insert(key, path.clone());
        Ok(path)
    }

    /// Waits for `GET /readyz` to answer 200 with the admin certificate. When `may_move`, an
    /// API server that lost its port to another process is started again on a new one.
    async fn await_apiserver(&self, may_move: bool) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut moves = 0;
        let mut client = None;
        loop {
            let exit = {
                let mut procs = self.procs();
                match procs.apiserver.as_mut() {
                    None => {
                        return Err(Error::Config(format!(
                            "the API server of plane {:?} was stopped while starting",
                            self.name
                        )));
                    }
                    Some(p) => p
                        .exited()
                        .map(|status| (p.exited_error(&self.name, status), p.output())),
                }
            };
            if let Some((error, output)) = exit {
                if may_move && moves < 5 && output.contains("address already in use") {
                    moves += 1;
                    self.port.store(free_port()?, Ordering::SeqCst);
                    self.write_admin_kubeconfig()?;
                    let apiserver = self.spawn_apiserver()?;
                    self.procs().apiserver = Some(apiserver);
                    client = None;
                    continue;
                }
                return Err(error);
            }
            let ready = match &client {
                Some(client) => readyz(client).await,
                None => {
                    client = Some(client_from_kubeconfig(&self.admin_kubeconfig).await?);
                    continue;
                }
            };
            let observed = match ready {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let tail = self
                    .procs()
                    .apiserver
                    .as_ref()
                    .map(|p| format!("\nlast lines of {}:\n{}", p.log.display(), p.tail()))
                    .unwrap_or_default();
                return Err(Error::Timeout {
                    what: format!(
                        "the API server of plane {:?} at {} to answer GET /readyz with 200",
                        self.name,
                        self.server_url()
                    ),
                    after: READY_TIMEOUT,
                    observed,
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn readyz(client: &kube::Client) -> std::result::Result<(), String> {
    let request = http::Request::get("/readyz?verbose")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(5), client.request_text(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let mut text = e.to_string();
            text.truncate(2000);
            Err(text)
        }
        Err(_) => Err("GET /readyz got no answer within 5s".to_owned()),
    }
}

/// Asks etcd's `/health` over plain HTTP/1.0, to need no HTTP client here.
fn etcd_health(port: u16) -> std::result::Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.contains(r#""health":"true""#) {
        Ok(())
    } else {
        Err(answer)
    }
}

/// A loopback port that was free a moment ago and that this process has not handed out
/// before. Another process may still take it, so callers retry on "address already in use".
fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io("find a free port"))?;
        let port = listener
            .local_addr()
            .map_err(io("find a free port"))?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(Error::Config("no free loopback port found".to_owned()))
}

/// Runs blocking work (processes, files, sleeps) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Config(format!("a blocking task was cancelled: {e}"))),
    }
}
