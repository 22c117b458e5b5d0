//! `deploy/kubernetes`, the kustomize base: it renders (`kubectl kustomize`), every object
//! validates against the Kubernetes API schemas offline (`kubernetes-validate --strict`,
//! which rejects unknown fields too), the pod is locked down as the README says, and the
//! manifests agree with the binary: the ConfigMap's `pincer.toml` loads, the container
//! port is the config's port, the data volume is mounted at `PINCER_HOME`, and the real
//! binary, run with the container's command, environment (the Secret's keys included)
//! and config, answers each probe path of the manifests as the kubelet asks it (`Host`:
//! the pod's address) and answers a chat with the Secret's key reaching the model.
//!
//! `kubectl` (Debian's `kubernetes-client` if none is installed) and `kubernetes-validate`
//! (PyPI, with PyYAML, which reads the rendered YAML here) come from the test command;
//! where one is missing, each test prints SKIPPED with the reason.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gw, TempDir, free_port};
use pincer_fakes::anthropic::AnthropicFake;
use reqwest::StatusCode;
use serde_json::{Value, json};

// === helpers ===

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Whether `program ARGS` runs; if not, prints SKIPPED naming what is missing.
fn have(program: &str, args: &[&str], what: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: {what} is not installed (scripts/test installs it)");
    }
    ok
}

fn kubectl() -> bool {
    have(
        "kubectl",
        &["version", "--client"],
        "kubectl (Debian's kubernetes-client)",
    )
}

/// PyYAML comes with kubernetes-validate.
fn validator() -> bool {
    have(
        "kubernetes-validate",
        &["--version"],
        "kubernetes-validate (PyPI)",
    ) && have("python3", &["-c", "import yaml"], "PyYAML (python3)")
}

/// `kubectl kustomize dir`: the rendered YAML.
fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 YAML")
}

/// The objects of a YAML stream, as JSON (PyYAML reads it).
fn objects(yaml: &str) -> Vec<Value> {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write YAML");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "YAML to JSON: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The object of `kind` (the only one of that kind).
fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}: {found:#?}");
    found[0]
}

fn by_name<'a>(items: &'a Value, name: &str) -> &'a Value {
    items
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {items:#}"))
}

fn text<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
}

/// A Secret's values: `stringData` as written, `data` decoded (the API server's view).
fn secret_values(secret: &Value) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for (k, v) in secret["data"].as_object().into_iter().flatten() {
        let bytes = base64_decode(text(v, k));
        values.insert(k.clone(), String::from_utf8(bytes).expect("utf-8 secret"));
    }
    for (k, v) in secret["stringData"].as_object().into_iter().flatten() {
        values.insert(k.clone(), text(v, k).to_string());
    }
    values
}

/// Standard base64, whitespace skipped (kustomize folds long values).
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("not base64: {s:?}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The port a probe or a Service names: a number, or the name of a container port.
fn port_of(port: &Value, container: &Value) -> u64 {
    match port {
        Value::Number(n) => n.as_u64().expect("port number"),
        Value::String(name) => by_name(&container["ports"], name)["containerPort"]
            .as_u64()
            .expect("containerPort"),
        other => panic!("port {other}"),
    }
}

/// The `Deployment`'s one container.
fn container(objects: &[Value]) -> &Value {
    let containers = &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers.as_array().map(Vec::len),
        Some(1),
        "{containers:#}"
    );
    &containers[0]
}

/// The README's overlay (the `yaml` block after `deploy/local/kustomization.yaml`),
/// written beside a copy of the base as in a checkout, with `secrets.env` holding
/// `secrets`: what `kubectl apply -k deploy/local` applies.
fn readme_overlay(work: &Path, secrets: &[(&str, &str)]) -> PathBuf {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let at = readme
        .find("deploy/local/kustomization.yaml")
        .expect("the README names deploy/local/kustomization.yaml");
    let start = at + readme[at..].find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("the block's end");
    let deploy = work.join("deploy");
    let copy = deploy.join("kubernetes");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for entry in std::fs::read_dir(base()).expect("read the base") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy");
    }
    let local = deploy.join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    std::fs::write(local.join("kustomization.yaml"), &readme[start..end]).expect("write");
    let env: String = secrets.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(local.join("secrets.env"), env).expect("write");
    local
}

/// `gateway.*` of the ConfigMap's `pincer.toml`, loaded as the gateway loads it, with
/// `env` as the environment.
fn gateway_config(file: &Path, env: &BTreeMap<String, String>) -> pincer_config::Loaded {
    let sources = pincer_config::Sources {
        home: file.parent().expect("dir").to_path_buf(),
        file: Some(file.to_path_buf()),
        file_required: true,
        env: env.clone(),
    };
    let loaded = pincer_config::load(&sources)
        .unwrap_or_else(|e| panic!("the ConfigMap's pincer.toml does not load: {e}"));
    loaded
        .check_gateway_token()
        .unwrap_or_else(|e| panic!("{e}"));
    loaded
}

// === the base ===

#[test]
fn the_base_renders_and_every_object_validates_against_the_api_schemas() {
    if !kubectl() || !validator() {
        return;
    }
    let yaml = kustomize(&base());
    let dir = TempDir::new();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &yaml).expect("write");
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet"])
        .arg(&rendered)
        .output()
        .expect("run kubernetes-validate");
    assert!(
        out.status.success(),
        "kubernetes-validate --strict:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = objects(&yaml);
    let mut kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or("?"))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
    );
    for o in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(o["metadata"]["namespace"], "pincer", "{o:#}");
    }
    // The ConfigMap holds the file beside the kustomization, as it is.
    let file = std::fs::read_to_string(base().join("pincer.toml")).expect("pincer.toml");
    assert_eq!(
        one(&objects, "ConfigMap")["data"]["pincer.toml"],
        json!(file)
    );
}

#[test]
fn the_pod_is_one_locked_down_writer() {
    if !kubectl() || !validator() {
        return;
    }
    let objects = objects(&kustomize(&base()));
    let deployment = one(&objects, "Deployment");
    let spec = &deployment["spec"];
    let pod = &spec["template"]["spec"];
    let c = container(&objects);
    // One writer per store.
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["strategy"]["type"], "Recreate");
    // No API token anywhere.
    assert_eq!(
        one(&objects, "ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["serviceAccountName"],
        one(&objects, "ServiceAccount")["metadata"]["name"]
    );
    // Non-root (numeric, as the image's user), read-only root, no capabilities.
    for sc in [&pod["securityContext"], &c["securityContext"]] {
        assert_eq!(sc["runAsNonRoot"], true, "{sc:#}");
        assert_eq!(sc["runAsUser"], 10001, "{sc:#}");
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc:#}");
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null(), "{sc:#}");
    // Sized, with a memory limit.
    for key in ["requests", "limits"] {
        assert!(
            c["resources"][key]["memory"].is_string(),
            "{:#}",
            c["resources"]
        );
    }
    // Probes on the gateway's three paths.
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/startupz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The grace period covers the drain and the tree's stop (the store's writer: 10 s).
    let file = base().join("pincer.toml");
    let loaded = gateway_config(&file, &BTreeMap::new());
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    let drain = loaded.config.gateway.drain_timeout;
    assert!(
        Duration::from_secs(grace) > drain + Duration::from_secs(10),
        "terminationGracePeriodSeconds {grace} s is not above drainTimeout {drain:?} + 10 s"
    );
    // Egress: DNS and HTTPS only.
    let policy = one(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Egress"]));
    let mut ports: Vec<u64> = policy["spec"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_u64())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports, [53, 443]);
}

#[test]
fn the_base_secret_s_placeholder_token_stops_the_gateway_naming_it() {
    if !kubectl() || !validator() {
        return;
    }
    let objects = objects(&kustomize(&base()));
    let home = TempDir::new();
    let config = home.path().join("pincer.toml");
    std::fs::write(
        &config,
        text(&one(&objects, "ConfigMap")["data"]["pincer.toml"], "config"),
    )
    .expect("write");
    let secrets = secret_values(one(&objects, "Secret"));
    let mut env: Vec<(&str, &str)> = secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let config_path = config.to_str().expect("utf-8 path");
    env.push(("PINCER_CONFIG", config_path));
    let port = free_port().to_string();
    env.push(("PINCER_GATEWAY_PORT", port.as_str()));
    let (code, err) = common::start::refused(home.path(), &[], &env);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("gateway.auth.token") && err.contains("GATEWAY_TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains("change-me"),
        "the placeholder is a secret value all the same: {err}"
    );
}

/// The kustomize in `kubectl`, if it is one that reads the README's overlay (a
/// directory under `resources`, `envs`: kustomize 3 and later, kubectl 1.21 and later).
fn modern_kustomize() -> bool {
    let out = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .expect("kubectl version");
    let said = String::from_utf8_lossy(&out.stdout);
    let modern = said
        .lines()
        .any(|l| l.starts_with("Kustomize Version: v") && !l.starts_with("Kustomize Version: v2."));
    if !modern {
        eprintln!(
            "SKIPPED: this kubectl's kustomize predates the README's overlay (kubectl 1.21+ reads it):\n{said}"
        );
    }
    modern
}

#[test]
fn the_readme_s_overlay_replaces_the_secret_and_nothing_else() {
    if !kubectl() || !validator() || !modern_kustomize() {
        return;
    }
    let work = TempDir::new();
    let token = "0123456789abcdef0123456789abcdef";
    let overlay = readme_overlay(
        work.path(),
        &[("GATEWAY_TOKEN", token), ("ANTHROPIC_API_KEY", "sk-ant-x")],
    );
    let mut base = objects(&kustomize(&base()));
    let mut overlaid = objects(&kustomize(&overlay));
    let secret = |objects: &mut Vec<Value>| {
        let at = objects
            .iter()
            .position(|o| o["kind"] == "Secret")
            .expect("a Secret");
        objects.remove(at)
    };
    let replaced = secret(&mut overlaid);
    let placeholder = secret(&mut base);
    assert_eq!(
        replaced["metadata"], placeholder["metadata"],
        "the same Secret, replaced"
    );
    assert_eq!(
        secret_values(&replaced),
        BTreeMap::from([
            ("ANTHROPIC_API_KEY".to_string(), "sk-ant-x".to_string()),
            ("GATEWAY_TOKEN".to_string(), token.to_string()),
        ])
    );
    // Everything else is the base's (the image tag is the README's too).
    assert_eq!(overlaid, base);
}

// === the manifests against the binary ===

#[tokio::test]
async fn the_binary_serves_the_probes_port_and_data_path_the_manifests_name() {
    if !kubectl() || !validator() {
        return;
    }
    let work = TempDir::new();
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let api_key = "sk-ant-from-the-secret";
    let objects = objects(&kustomize(&base()));
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let c = container(&objects);

    // The environment the kubelet gives the container: its `env`, then the Secret's keys,
    // with the values an overlay gives them (the README's: tested below).
    let mut env: BTreeMap<String, String> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                text(&e["name"], "env name").to_string(),
                text(&e["value"], "env value").to_string(),
            )
        })
        .collect();
    let secret = one(&objects, "Secret");
    assert_eq!(
        c["envFrom"][0]["secretRef"]["name"],
        secret["metadata"]["name"]
    );
    let keys: Vec<String> = secret_values(secret).into_keys().collect();
    assert_eq!(
        keys,
        ["ANTHROPIC_API_KEY", "GATEWAY_TOKEN"],
        "the README names each key"
    );
    env.insert("GATEWAY_TOKEN".into(), token.clone());
    env.insert("ANTHROPIC_API_KEY".into(), api_key.into());
    let home = env.get("PINCER_HOME").expect("PINCER_HOME").clone();
    let config_path = env.get("PINCER_CONFIG").expect("PINCER_CONFIG").clone();

    // The data volume is the claim, mounted at PINCER_HOME; the config is the ConfigMap's
    // file at PINCER_CONFIG.
    let mounts = &c["volumeMounts"];
    let volumes = &pod["volumes"];
    let claim = one(&objects, "PersistentVolumeClaim")["metadata"]["name"].clone();
    let data = volumes
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["persistentVolumeClaim"]["claimName"] == claim)
        .expect("a volume of the claim");
    let data_mount = by_name(mounts, text(&data["name"], "volume name"));
    assert_eq!(
        data_mount["mountPath"],
        json!(home),
        "the claim is PINCER_HOME"
    );
    assert_ne!(data_mount["readOnly"], true);
    let config_map = one(&objects, "ConfigMap");
    let config_volume = volumes
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["configMap"]["name"] == config_map["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    let config_mount = by_name(mounts, text(&config_volume["name"], "volume name"));
    let config_dir = text(&config_mount["mountPath"], "mountPath");
    let key = config_path
        .strip_prefix(&format!("{config_dir}/"))
        .unwrap_or_else(|| {
            panic!("PINCER_CONFIG {config_path} is not in the ConfigMap's mount {config_dir}")
        });
    let config_text = text(&config_map["data"][key], "the config file");

    // The pod's paths, here: PINCER_HOME and the config's directory in a temp dir.
    let data_dir = work.path().join("data");
    let etc = work.path().join("etc");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    std::fs::create_dir_all(&etc).expect("mkdir");
    let local_config = etc.join(key);
    std::fs::write(&local_config, config_text).expect("write config");
    env.insert("PINCER_HOME".into(), data_dir.display().to_string());
    env.insert("PINCER_CONFIG".into(), local_config.display().to_string());

    // The container port is the config's port, and what the Service sends to.
    let loaded = gateway_config(&local_config, &env);
    let config_port = u64::from(loaded.config.gateway.port);
    let http = by_name(&c["ports"], "http");
    assert_eq!(
        http["containerPort"], config_port,
        "containerPort = gateway.port"
    );
    let service = one(&objects, "Service");
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(port_of(&service_port["targetPort"], c), config_port);
    assert_eq!(
        service["spec"]["selector"],
        one(&objects, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        loaded.config.gateway.bind, "0.0.0.0",
        "reachable on the pod's address"
    );
    let probes: Vec<(&str, &str, u64)> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .map(|p| {
            let get = &c[*p]["httpGet"];
            (
                *p,
                text(&get["path"], "probe path"),
                port_of(&get["port"], c),
            )
        })
        .collect();
    for (probe, _, port) in &probes {
        assert_eq!(*port, config_port, "{probe} probes the gateway's port");
    }

    // Run the container's command. On the config's own port when it is free here (what
    // shows the binary listens where the config says); a machine already using it gets a
    // free port through PINCER_GATEWAY_PORT, said on stderr.
    let port = match std::net::TcpListener::bind(("0.0.0.0", loaded.config.gateway.port)) {
        Ok(_) => loaded.config.gateway.port,
        Err(e) => {
            let free = free_port();
            eprintln!(
                "port {config_port} is in use here ({e}): the gateway gets {free} through PINCER_GATEWAY_PORT"
            );
            env.insert("PINCER_GATEWAY_PORT".into(), free.to_string());
            free
        }
    };
    assert_eq!(c["command"], json!(["/usr/local/bin/pincer"]));
    let args: Vec<&str> = c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| text(a, "arg"))
        .collect();
    // The model is the Anthropic fake: its base URL is the one setting not in the
    // manifests (the environment layer, as a test would set it in a pod).
    // It accepts only the Secret's key.
    let fake = AnthropicFake::start();
    fake.set(|k| k.valid_keys = vec![api_key.to_string()]);
    env.insert(
        "PINCER__PROVIDERS__ANTHROPIC__BASE_URL".into(),
        fake.base_url(),
    );
    let env_list: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut gw = Gw::spawn_args(&data_dir, &args, port, &env_list);

    // Each probe as the kubelet sends it: to the pod's address, so that is the Host.
    let probe = |path: &str| {
        gw.http
            .get(gw.url(path))
            .header("host", format!("10.42.0.7:{port}"))
            .send()
    };
    let (startup, liveness, readiness) = (probes[0].1, probes[1].1, probes[2].1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match probe(startup).await {
            Ok(r) if r.status() == StatusCode::OK => break,
            other => assert!(
                Instant::now() < deadline,
                "{startup}: {other:?}; log:\n{}",
                gw.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alive = probe(liveness).await.expect("liveness");
    assert_eq!(alive.status(), StatusCode::OK, "{liveness}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = probe(readiness).await.expect("readiness");
        if r.status() == StatusCode::OK {
            break;
        }
        let body = r.text().await.unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "{readiness}: {body}; log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A chat with the Secret's token, answered by the model with the Secret's key.
    let reply = gw
        .http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .json(&json!({"model": "pincer:main", "user": "k8s", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("chat");
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{body}; log:\n{}", gw.log());
    let requests = fake.message_requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].header("x-api-key"), Some(api_key));

    // The store is in PINCER_HOME, the claim's mount.
    assert!(
        data_dir.join("pincer.db").is_file(),
        "{:?}",
        std::fs::read_dir(&data_dir).map(|d| d.count())
    );
    assert!(
        !data_dir.join("gateway.token").exists(),
        "the Secret's token is used, none generated"
    );

    // SIGTERM, as the kubelet stops the pod: drained and gone within the grace period.
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    gw.signal("TERM");
    let exit = gw
        .wait_exit(Duration::from_secs(grace))
        .unwrap_or_else(|| panic!("still running after {grace} s"));
    assert!(exit.success(), "exit {exit:?}; log:\n{}", gw.log());
    assert!(
        !gw.log().contains(&token),
        "the token never reaches the log"
    );
    assert!(!gw.log().contains(api_key), "the key never reaches the log");
}
