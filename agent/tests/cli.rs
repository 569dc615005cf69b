//! `sync-agent`'s command line, without a cluster: bad input gets a clear error and an exit code,
//! and the printing flags need no cluster.

use std::process::{Command, Output};

const AGENT: &str = env!("CARGO_BIN_EXE_sync-agent");

fn run(args: &[&str]) -> Output {
    Command::new(AGENT)
        .args(args)
        // Neither a kubeconfig nor a variable of the agent's may leak in from the environment.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("sync-agent starts")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_kinds_are_usage_errors_that_name_the_value_and_the_rule() {
    let file = std::env::temp_dir().join(format!("sync-agent-cli-{}.yaml", std::process::id()));
    std::fs::write(
        &file,
        "resources:\n- resource: caches.v1.acme.dev\n  secret: x\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let cases: [(&[&str], &str); 8] = [
        (&[], "no kind to sync: give --resource PLURAL.VERSION.GROUP"),
        (
            &["--resource", "databases.acme.dev"],
            "`databases.acme.dev` is not PLURAL.VERSION.GROUP, such as `databases.v1.acme.dev`",
        ),
        (
            &["--resource", "databases.v1.acme.dev:secret=db"],
            "unknown option `secret`; the options are: remote-suffix,",
        ),
        (
            &["--resource", "databases.v1.acme.dev:remote-suffix=_eu"],
            "option `remote-suffix`: `remote_suffix` must contain only lowercase letters",
        ),
        (
            &[
                "--resource",
                "databases.v1.acme.dev",
                "--namespace-prefix",
                "Tenant-",
            ],
            "invalid value 'Tenant-' for '--namespace-prefix",
        ),
        (
            &[
                "--resource",
                "databases.v1.acme.dev",
                "--resource",
                "databases.v2.acme.dev",
            ],
            "`databases.v2.acme.dev` is listed twice",
        ),
        (
            &["--config", "/nonexistent/agent.yaml"],
            "failed to read /nonexistent/agent.yaml",
        ),
        (
            &["--config", &file],
            "entry 1 of `resources`: unknown option `secret`",
        ),
    ];
    for (args, expected) in cases {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in:\n{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let _ = std::fs::remove_file(file);
}

#[test]
fn without_a_management_cluster_the_agent_says_how_to_name_one() {
    let out = run(&["--resource", "databases.v1.acme.dev"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: say how to reach the management cluster: --remote-kubeconfig"),
        "{err}"
    );
}

#[test]
fn printing_needs_no_cluster() {
    for flag in ["--print-rbac", "--print-manifests"] {
        let out = run(&["--resource", "databases.v1.acme.dev:secrets=db", flag]);
        assert!(out.status.success(), "{flag}: {}", stderr(&out));
        let yaml = String::from_utf8(out.stdout).unwrap();
        assert!(yaml.contains("databases/status"), "{flag}: {yaml}");
        assert!(yaml.contains("resourceNames:\n  - db\n"), "{flag}: {yaml}");
    }
}
