#!/usr/bin/env python3
"""The container image, built and run with podman (scripts/test runs this).

    python3 tests/container/image_test.py target/static/pincer

First, without podman: docker/Dockerfile and docker/compose.yaml agree with each other
and with the binary (the healthcheck is a command the binary has, the port, the data
path, the user, the grace period above the drain timeout). Then the image is built from
the static binary given (docker/Dockerfile with BINARY=local: the source stage needs a
base image, and none can be pulled here; scripts/build-static is what that stage runs)
and run, the way the README says:

- without a token it exits at once, non-zero, naming the ways to give one;
- with one: its HEALTHCHECK turns healthy, a chat is answered, a name from /etc/hosts
  and one only DNS knows both resolve (the DNS server is on loopback), the root
  filesystem is read-only;
- `podman stop` lets the turn in flight finish and the gateway exits 0 within the grace
  period;
- a second container on the same volume, its token from a secret file, has the first
  one's transcript;
- docker/compose.yaml itself, under podman-compose: healthy by its own healthcheck, its
  config directory reloaded on a saved edit, stop exit 0.

Prints the figures of the README's table: image size, start to healthy, idle RSS.
"""

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import uuid

import yaml

from loopback_dns import LoopbackDns

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# A private store, so the test neither sees nor disturbs other podman users of the machine.
STORAGE = ["--root", "/var/tmp/pincer-test-podman/root", "--runroot", "/run/pincer-test-podman"]
# How podman runs as root on these machines (no systemd, no overlay in the sandbox).
PODMAN = ["podman", *STORAGE, "--storage-driver", "vfs", "--runtime", "runc",
          "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
# The test's names; removed at the end.
RUN_ID = uuid.uuid4().hex[:10]
IMAGE = f"localhost/pincer-test:{RUN_ID}"
GRACE_S = 20
DNS_HOST, DNS_NAME = "127.0.0.153", "gateway.pincer.test"
HOSTS_NAME = "hosts-only.pincer.test"


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def podman(*args, timeout=120):
    return run([*PODMAN, *args], timeout=timeout)


def podman_ok(*args, timeout=120):
    out = podman(*args, timeout=timeout)
    check(out.returncode == 0, f"podman {' '.join(args)}: {out.returncode}\n{out.stderr}")
    return out.stdout.strip()


def seconds(text):
    """`20s`, `1m30s`, `1.5s`: a compose or Dockerfile duration in seconds."""
    total, found = 0.0, False
    for value, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", str(text)):
        total += float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        found = True
    check(found, f"`{text}` is not a duration")
    return total


# === what the files say ===

def dockerfile_final_stage():
    """The final stage's instructions, continuation lines joined: [(INSTR, args)]."""
    with open(os.path.join(REPO, "docker/Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        if instr.upper() == "FROM":
            current = []
            stages.append((args, current))
        elif current is not None:
            current.append((instr.upper(), args.strip()))
    check(stages and stages[-1][0].split()[0] == "scratch", "the final stage is FROM scratch")
    return stages[-1][1]


def one(stage, instr):
    found = [args for i, args in stage if i == instr]
    check(len(found) == 1, f"the final stage has one {instr}: {found}")
    return found[0]


def check_files(binary):
    stage = dockerfile_final_stage()
    entry = json.loads(one(stage, "ENTRYPOINT"))
    health = one(stage, "HEALTHCHECK")
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", health))
    command = json.loads(health.split("CMD", 1)[1])
    check(command == [*entry, "health"], f"HEALTHCHECK runs `{entry[0]} health`: {command}")
    expose = one(stage, "EXPOSE")
    volume = json.loads(one(stage, "VOLUME"))
    env = dict(re.findall(r"(\S+?)=(\S+)", one(stage, "ENV")))
    user = one(stage, "USER")
    check(re.fullmatch(r"\d+:\d+", user) and user != "0:0", f"USER is numeric, not root: {user}")
    with open(os.path.join(REPO, "docker/rootfs/etc/passwd")) as f:
        uids = [line.split(":")[2] for line in f if line.strip()]
    check(user.split(":")[0] in uids, f"uid {user} has a passwd entry")
    check(volume == [env.get("PINCER_HOME")], f"VOLUME {volume} is PINCER_HOME {env}")
    check(env.get("PINCER__GATEWAY__BIND") == "0.0.0.0", f"the image binds every address: {env}")
    with open(os.path.join(REPO, "config/default.toml"), "rb") as f:
        port = str(tomllib.load(f)["gateway"]["port"])
    check(expose == port, f"EXPOSE {expose} is the default port {port}")

    # The binary has the command, and its flags.
    out = run([binary, "health", "--help"])
    check(out.returncode == 0 and "--ready" in out.stdout and "--url" in out.stdout,
          f"`pincer health --help`: {out.stdout}{out.stderr}")

    with open(os.path.join(REPO, "docker/compose.yaml")) as f:
        compose = yaml.safe_load(f)
    gw = compose["services"]["gateway"]
    check(gw["healthcheck"]["test"] == ["CMD", *command[0:2], "--ready"],
          f"compose's healthcheck is `pincer health --ready`: {gw['healthcheck']['test']}")
    check(f"pincer-data:{env['PINCER_HOME']}" in gw["volumes"], f"the volume is on /data: {gw['volumes']}")
    check("pincer-data" in compose["volumes"], "pincer-data is a named volume")
    check(any(p.rsplit(":", 1)[-1] == port for p in gw["ports"]), f"compose publishes {port}")
    check(all(p.startswith("127.0.0.1:") for p in gw["ports"]), "compose publishes on loopback only")
    check(gw["restart"] == "unless-stopped", "restart: unless-stopped")
    check(gw.get("read_only") is True, "read_only: true")
    check(gw["env_file"] == "pincer.env", "the token comes from pincer.env")
    for ignore in (".gitignore", ".dockerignore"):
        with open(os.path.join(REPO, ignore)) as f:
            check("docker/pincer.env" in f.read().split(), f"{ignore} keeps docker/pincer.env out")
    config_dir = [v for v in gw["volumes"] if v.startswith("./config:")]
    check(len(config_dir) == 1, f"the config directory is mounted: {gw['volumes']}")
    mount = config_dir[0].split(":")[1]
    check(gw["environment"]["PINCER_CONFIG"].startswith(mount + "/"), "PINCER_CONFIG is in it")
    grace = seconds(gw["stop_grace_period"])
    for name in ("pincer.toml", "pincer.vault.toml"):
        with open(os.path.join(REPO, "docker/config", name), "rb") as f:
            drain = seconds(tomllib.load(f).get("gateway", {}).get("drainTimeout", "10s"))
        check(grace > drain, f"stop_grace_period {grace} s is above {name}'s drainTimeout {drain} s")
    check(GRACE_S > 10, "the test's stop grace is above the default drain timeout")
    vault = compose["services"]["vault"]
    check(vault["profiles"] == ["vault"], "the Vault dev server is in profile `vault`")
    with open(os.path.join(REPO, "docker/config/pincer.vault.toml"), "rb") as f:
        address = tomllib.load(f)["secrets"]["providers"]["vault"]["address"]
    check(address == "http://vault:8200", f"the vault config reaches the compose service: {address}")
    with open(os.path.join(REPO, "docker/compose.secret.yaml")) as f:
        secret = yaml.safe_load(f)
    path = secret["services"]["gateway"]["environment"]["PINCER_GATEWAY_TOKEN_FILE"]
    names = secret["services"]["gateway"]["secrets"]
    check(names == [os.path.basename(path)] and path == f"/run/secrets/{names[0]}",
          f"the token file is where compose mounts the secret: {path} {names}")
    check(secret["secrets"][names[0]]["file"] == "./pincer_token", "the secret's file")
    for ignore in (".gitignore", ".dockerignore"):
        with open(os.path.join(REPO, ignore)) as f:
            check("docker/pincer_token" in f.read().split(), f"{ignore} keeps docker/pincer_token out")
    print("files: Dockerfile, compose.yaml, compose.secret.yaml and the binary agree")
    return {
        "start_period": [seconds(options["start-period"]), seconds(gw["healthcheck"]["start_period"])],
        "port": port,
    }


# === podman ===

def usable():
    """Why podman cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    if shutil.which("runc") is None:
        return "runc is not installed"
    out = podman("info", "--format", "{{.Host.OCIRuntime.Name}}")
    if out.returncode != 0:
        return f"`podman info` fails: {out.stderr.strip()}"
    return None


def limits():
    """podman as root asks for open-file and process limits above ours; without
    CAP_SYS_RESOURCE runc cannot raise them, so the container gets ours."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=4096:4096"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, token=None, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait(what, probe, limit):
    deadline = time.monotonic() + limit
    while True:
        try:
            result = probe()
        except OSError:
            result = None
        if result:
            return result
        check(time.monotonic() < deadline, f"{what} within {limit} s")
        time.sleep(0.02)


def build_image(local_dir):
    staged = os.path.join(REPO, local_dir, "ca-certificates.crt")
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", staged)
    started = time.monotonic()
    podman_ok("build", "--pull=never", "--format", "docker",
              "--build-arg", "BINARY=local",
              "--build-arg", f"LOCAL_DIR={local_dir}",
              "-f", "docker/Dockerfile", "-t", IMAGE, REPO, timeout=600)
    took = time.monotonic() - started
    inspected = json.loads(podman_ok("image", "inspect", IMAGE))[0]
    size, config = inspected["Size"], inspected["Config"]
    check(config["User"] == "10001:10001", f"runs as 10001: {config['User']}")
    check("18789/tcp" in config["ExposedPorts"], f"port: {config['ExposedPorts']}")
    check("/data" in config["Volumes"], f"volume: {config['Volumes']}")
    healthcheck = inspected.get("Healthcheck")
    check(healthcheck and healthcheck["Test"] == ["CMD", "/usr/local/bin/pincer", "health"],
          f"the healthcheck is kept (docker format): {healthcheck}")
    mounted = podman_ok("image", "mount", IMAGE)
    try:
        data = os.stat(os.path.join(mounted, "data"))
        check((data.st_uid, data.st_gid) == (10001, 10001), "/data is the user's")
        check(os.listdir(os.path.join(mounted, "data")) == [], "/data is empty")
        files = sorted(os.path.relpath(os.path.join(d, f), mounted)
                       for d, _, fs in os.walk(mounted) for f in fs)
    finally:
        podman("image", "unmount", IMAGE)
    expected = ["etc/group", "etc/nsswitch.conf", "etc/passwd",
                "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/pincer"]
    check(files == expected, f"the image holds only {expected}: {files}")
    print(f"image: {size} bytes ({size / 1e6:.1f} MB), built in {took:.1f} s")
    return size


def missing_token(port):
    started = time.monotonic()
    out = podman("run", "--rm", "--network", "host", *limits(),
                 "-e", f"PINCER_GATEWAY_PORT={port}", IMAGE, timeout=60)
    took = time.monotonic() - started
    check(out.returncode == 2, f"no token: exit {out.returncode} (want 2)\n{out.stderr}")
    for words in ("refusing to bind 0.0.0.0 without gateway.auth.token",
                  "PINCER_GATEWAY_TOKEN", "PINCER_GATEWAY_TOKEN_FILE=PATH",
                  "/run/secrets/pincer_token", "secret ref"):
        check(words in out.stderr, f"the refusal names `{words}`:\n{out.stderr}")
    check(took < 10, f"the refusal is at once: {took:.1f} s")
    print(f"no token: exit 2 after {took:.2f} s: {out.stderr.strip().splitlines()[-1][:120]}...")


def gateway(name, volume, port, env, extra=(), read_only=True):
    """Starts a gateway container the way the README does, with the test's port. With
    `read_only`, nothing is writable but the volume on /data (podman's tmpfs on /run and
    /tmp left out, as Docker's --read-only has none)."""
    root = ["--read-only", "--read-only-tmpfs=false"] if read_only else []
    args = ["run", "-d", "--name", name, "--network", "host", *limits(), *root, "--cap-drop", "all",
            "--security-opt", "no-new-privileges", "-v", f"{volume}:/data",
            "-e", f"PINCER_GATEWAY_PORT={port}", *extra]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    started = time.monotonic()
    out = podman(*args, IMAGE)
    # Without systemd podman cannot schedule the healthcheck itself (it says so); the test
    # runs it with `podman healthcheck run`, which is what the timer would run.
    check(out.returncode == 0, f"podman run {name}: {out.stderr}")
    return started


def healthy(name, started, port):
    live = wait("/healthz 200 from the host",
                lambda: http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200
                and time.monotonic(), 30)
    checks = 0

    def probe():
        nonlocal checks
        checks += 1
        return podman("healthcheck", "run", name).returncode == 0 and time.monotonic()

    done = wait("the HEALTHCHECK to pass", probe, 30)
    status = podman_ok("inspect", name, "--format", "{{.State.Health.Status}}")
    check(status == "healthy", f"health status: {status}")
    return live - started, done - started, checks


def logs(name):
    out = podman("logs", name)
    return out.stdout + out.stderr


def rss_kb(name):
    pid = podman_ok("inspect", name, "--format", "{{.State.Pid}}")
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmRSS:")))


def chat(port, token, user, text, timeout=30):
    return http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", token,
                {"model": "pincer:main", "user": user,
                 "messages": [{"role": "user", "content": text}]}, timeout=timeout)


def session(port, token, user):
    key = urllib.parse.quote(f"agent:main:http:http:user:{user}", safe="")
    return http("GET", f"http://127.0.0.1:{port}/admin/sessions/{key}", token)


def compose_run(scratch, port, token):
    """docker/compose.yaml itself, brought up by podman-compose on the test's image: its
    healthcheck (`pincer health --ready`) turns healthy, the config comes from the mounted
    directory and an edit saved there is reloaded, and stop is exit 0. An override file
    adapts it to this machine only: host network and the test's port instead of a
    published one, the limits podman needs here, and no `start_interval` (Docker 25's,
    which podman 4.3 does not know)."""
    project = f"pincer-test-{RUN_ID}"
    where = os.path.join(scratch, "compose")
    os.makedirs(where)
    shutil.copyfile(os.path.join(REPO, "docker/compose.yaml"), os.path.join(where, "compose.yaml"))
    shutil.copytree(os.path.join(REPO, "docker/config"), os.path.join(where, "config"))
    with open(os.path.join(where, "pincer.env"), "w") as f:
        f.write(f"PINCER_GATEWAY_TOKEN={token}\n")
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with open(os.path.join(where, "override.yaml"), "w") as f:
        f.write(f"""services:
  gateway:
    network_mode: host
    ports: !reset []
    environment:
      PINCER_GATEWAY_PORT: "{port}"
    ulimits:
      nofile: {nofile}
      nproc: 4096
    healthcheck:
      start_interval: !reset null
""")
    compose = [sys.executable, "-m", "podman_compose", "--podman-args", " ".join(PODMAN[1:]),
               "-p", project, "-f", "compose.yaml", "-f", "override.yaml"]
    env = {**os.environ, "PINCER_IMAGE": IMAGE}
    name = f"{project}_gateway_1"
    try:
        out = run([*compose, "up", "-d"], cwd=where, env=env)
        check(out.returncode == 0, f"podman-compose up: {out.stdout}{out.stderr}")
        wait("compose's healthcheck to pass",
             lambda: podman("healthcheck", "run", name).returncode == 0, 30)
        state = podman_ok("inspect", name, "--format",
                          "{{.State.Health.Status}} {{.HostConfig.ReadonlyRootfs}} "
                          "{{.HostConfig.RestartPolicy.Name}}")
        check(state == "healthy true unless-stopped", f"health, read-only, restart: {state}")
        check("/etc/pincer/pincer.toml" in logs(name), f"the mounted config:\n{logs(name)}")
        status, body = chat(port, token, "compose", "hello compose")
        check(status == 200, f"chat under compose: {status} {body}")
        # An editor's save: a new file renamed over the old one.
        config = os.path.join(where, "config/pincer.toml")
        with open(config + ".new", "w") as f:
            f.write(open(config).read() + '\n[agents.main]\nsystemPrompt = "edited"\n')
        os.rename(config + ".new", config)
        wait("the edit to be reloaded", lambda: "Config reloaded." in logs(name), 10)
        out = run([*compose, "stop"], cwd=where, env=env, timeout=GRACE_S + 30)
        check(out.returncode == 0, f"podman-compose stop: {out.stderr}")
        code = podman_ok("inspect", name, "--format", "{{.State.ExitCode}}")
        check(code == "0", f"exit code under compose: {code}")
        print("compose: healthy by its healthcheck, chat answered, a saved edit reloaded, stop exit 0")
    finally:
        run([*compose, "down", "-v"], cwd=where, env=env)
        podman("rm", "-f", "-t", "0", name)
        podman("volume", "rm", "-f", f"{project}_pincer-data")


def main():
    binary = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/static/pincer")
    os.chdir(REPO)
    declared = check_files(binary)
    why = usable()
    if why:
        print(f"SKIPPED the container run: {why}")
        return
    try:
        import podman_compose  # noqa: F401  (run as `python3 -m podman_compose`)
    except ImportError:
        fail("podman-compose is missing: python3 -m pip install 'podman-compose==1.6.0'")
    local_dir = os.path.relpath(os.path.dirname(os.path.realpath(binary)), REPO)
    check(local_dir.split(os.sep)[:2] == ["target", "static"],
          f"the image is built from what scripts/build-static leaves in target/static: {binary}")
    profile = "release" if local_dir == "target/static" else os.path.basename(local_dir)
    print(f"binary: {binary} (profile {profile})")

    volume = f"pincer-test-{RUN_ID}"
    secret = f"pincer-test-token-{RUN_ID}"
    names = [f"pincer-test-a-{RUN_ID}", f"pincer-test-b-{RUN_ID}"]
    scratch = tempfile.mkdtemp(prefix="pincer-image-test-")
    resolv = os.path.join(scratch, "resolv.conf")
    token_file = os.path.join(scratch, "pincer_token")
    dns = None
    try:
        size = build_image(local_dir)
        missing_token(free_port())
        podman_ok("volume", "create", volume)
        token = uuid.uuid4().hex + uuid.uuid4().hex
        dns = LoopbackDns(DNS_HOST, DNS_NAME, "127.0.0.1")
        with open(resolv, "w") as f:
            f.write(f"nameserver {DNS_HOST}\noptions timeout:1 attempts:1\n")

        # --- first container: healthy, answers, resolves, drains ---
        port = free_port()
        started = gateway(names[0], volume, port, {
            "PINCER_GATEWAY_TOKEN": token,
            # A reply that takes a moment, so that one is in flight when it is stopped.
            "PINCER__PROVIDERS__ECHO__CHUNK_SIZE": "4",
            "PINCER__PROVIDERS__ECHO__CHUNK_DELAY_MS": "100",
        }, extra=["--add-host", f"{HOSTS_NAME}:127.0.0.1", "-v", f"{resolv}:/etc/resolv.conf:ro"])
        live_s, healthy_s, checks = healthy(names[0], started, port)
        print(f"start: podman run -> /healthz 200 in {live_s:.2f} s, "
              f"-> HEALTHCHECK healthy in {healthy_s:.2f} s ({checks} healthcheck runs)")
        for start_period in declared["start_period"]:
            check(start_period >= 10 * healthy_s,
                  f"a start period of {start_period} s is a wide margin over {healthy_s:.2f} s")

        status, body = chat(port, token, "docker", "hello from a container")
        check(status == 200, f"chat: {status} {body}")
        reply = body["choices"][0]["message"]["content"]
        check(reply == "echo: hello from a container", f"reply: {reply}")
        status, _ = chat(port, "wrong-" + token, "docker", "nope")
        check(status == 401, f"a wrong token: {status}")
        print(f"chat: 200 `{reply}`; a wrong token 401")

        for name in (HOSTS_NAME, DNS_NAME):
            out = podman("exec", names[0], "/usr/local/bin/pincer", "health",
                         "--url", f"http://{name}:{port}")
            check(out.returncode == 0, f"`pincer health --url http://{name}:{port}`: {out.stderr}")
        asked = {n for n, _ in dns.asked}
        check(DNS_NAME in asked, f"{DNS_NAME} was asked of the loopback DNS server: {dns.asked}")
        check(HOSTS_NAME not in asked, f"{HOSTS_NAME} came from /etc/hosts, not DNS: {dns.asked}")
        print(f"names: {HOSTS_NAME} from /etc/hosts, {DNS_NAME} from DNS on {DNS_HOST}")

        out = podman("exec", names[0], "/usr/local/bin/pincer", "health", "--url", "http://x/")
        check(out.returncode == 1, "an unknown name is exit 1")
        # It runs (and stops, below) with nothing writable but the volume on /data.
        readonly = podman_ok("inspect", names[0], "--format", "{{.HostConfig.ReadonlyRootfs}}")
        check(readonly == "true", f"read-only root: {readonly}")
        log = logs(names[0])
        check("Pincer is running" in log, f"the start is logged:\n{log}")
        check(token not in log, "the token is never logged")

        time.sleep(2)  # idle, as the README's other idle RSS figure
        idle_rss = rss_kb(names[0])
        print(f"idle RSS: {idle_rss} kB ({idle_rss / 1024:.1f} MB)")

        in_flight = {}

        def slow_chat():
            in_flight["answer"] = chat(port, token, "docker", "one more, in flight while stopping")

        client = threading.Thread(target=slow_chat)
        client.start()
        wait("the turn to be running", lambda: "/turn:" in json.dumps(
            http("GET", f"http://127.0.0.1:{port}/admin/tree", token)[1]), 10)
        stop_started = time.monotonic()
        podman_ok("stop", "-t", str(GRACE_S), names[0], timeout=GRACE_S + 30)
        stop_s = time.monotonic() - stop_started
        client.join(30)
        status, body = in_flight.get("answer", (None, None))
        check(status == 200, f"the turn in flight was answered: {status} {body}")
        check(body["choices"][0]["message"]["content"] == "echo: one more, in flight while stopping",
              f"in flight: {body}")
        code = podman_ok("inspect", names[0], "--format", "{{.State.ExitCode}}")
        check(code == "0", f"exit code after stop: {code}\n{logs(names[0])}")
        check(stop_s < GRACE_S, f"stopped within the grace period: {stop_s:.1f} s")
        log = logs(names[0])
        check("Shutting down" in log and "Stopped." in log, f"the drain is logged:\n{log}")
        print(f"stop: the turn in flight answered, exit 0 after {stop_s:.2f} s")

        # --- second container, same volume, token from a secret file ---
        # Its root is writable: podman 4.3 cannot make a secret's mount point on a read-only
        # root (runc: "read-only file system"), with or without its tmpfs on /run.
        with open(token_file, "w") as f:
            f.write(token + "\n")
        podman_ok("secret", "create", secret, token_file)
        port = free_port()
        started = gateway(names[1], volume, port,
                          {"PINCER_GATEWAY_TOKEN_FILE": "/run/secrets/pincer_token"},
                          extra=["--secret", f"{secret},type=mount,target=pincer_token,"
                                 "uid=10001,gid=10001,mode=0400"], read_only=False)
        healthy(names[1], started, port)
        status, body = session(port, token, "docker")
        check(status == 200, f"the session after a restart: {status} {body}")
        said = [e.get("content") for e in body["transcript"]]
        for line in ("hello from a container", "echo: hello from a container",
                     "one more, in flight while stopping",
                     "echo: one more, in flight while stopping"):
            check(line in said, f"`{line}` is in the transcript on the volume: {said}")
        check(session(port, "wrong-" + token, "docker")[0] == 401, "the file's token is the one")
        print("volume: a new container (token from a secret file) has the transcript")

        compose_run(scratch, free_port(), token)

        shipped = "" if profile == "release" else f" (profile {profile}: not the shipped figures)"
        print("FIGURES{}: image {:.1f} MB ({} bytes); start -> healthy {:.2f} s "
              "(-> /healthz {:.2f} s); idle RSS {:.1f} MB; stop {:.2f} s".format(
                  shipped, size / 1e6, size, healthy_s, live_s, idle_rss / 1024, stop_s))
    finally:
        if dns:
            dns.close()
        for name in names:
            podman("rm", "-f", "-t", "0", name)
        podman("volume", "rm", "-f", volume)
        podman("secret", "rm", secret)
        podman("rmi", "-f", IMAGE)
        # The build's stages: the store is the test's own.
        podman("image", "prune", "-f")
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
