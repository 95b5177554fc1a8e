#!/usr/bin/env python3
"""The container images, the compose network and the systemd unit stay consistent with the code.

No Docker daemon is needed (nor used): the configs under docker/ go through the node's own parser
(atoma_config_check), the Dockerfiles EXPOSE the ports those configs listen on, run the setup
script with flags it has, and derive their runtime packages with docker/runtime-packages.sh, which
must work on the binaries built here; the compose file wires each node to its config, key, model,
ledger and data volumes as the config expects; the systemd unit has the settings the node needs
and passes `systemd-analyze verify`; `docker compose config` runs where a compose plugin exists.

  container_files_test.py --source-dir DIR --config-check BIN --node BIN --cli BIN
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def port_of(address):
    """The port of host:port or [v6]:port; None for an empty address."""
    if not address:
        return None
    return int(address.rsplit(":", 1)[1])


def seconds(value):
    """A systemd or compose duration ("45s", "1min 30s", "45") in seconds."""
    total = 0.0
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", str(value)):
        total += float(number) * units[unit]
    return total


def parse_configs(config_check, files):
    out = subprocess.run([config_check] + files, capture_output=True, text=True)
    check(out.returncode == 0, "configs parse with the node's parser: " + " ".join(
        os.path.basename(f) for f in files) + (" -- " + out.stderr.strip() if out.returncode else ""))
    return json.loads(out.stdout) if out.stdout.strip() else [None] * len(files)


def final_stage(dockerfile_text):
    """The instructions of the last stage (after the last FROM), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile_text)
    lines = [l.strip() for l in joined.splitlines() if l.strip() and not l.strip().startswith("#")]
    last_from = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
    return lines, lines[last_from:]


def check_dockerfile(src, name, image_config, defaults):
    path = os.path.join(src, "docker", name)
    text = open(path).read()
    lines, final = final_stage(text)
    expose = set()
    for l in final:
        if l.upper().startswith("EXPOSE "):
            expose |= {int(p.split("/")[0]) for p in l.split()[1:]}
    wanted = {port_of(image_config[k]) for k in ("api.listen", "http.listen", "metrics.listen")}
    wanted.discard(None)
    check(expose == wanted, f"{name}: EXPOSE {sorted(expose)} == the ports docker/node.yaml "
          f"listens on {sorted(wanted)}")
    users = [l.split()[1] for l in final if l.upper().startswith("USER ")]
    check(users and users[-1] not in ("root", "0", "0:0"), f"{name}: runs as a non-root user "
          f"({users[-1] if users else 'no USER'})")
    check(any(re.match(r"COPY .*docker/node\.yaml /etc/atoma/node\.yaml$", l) for l in final),
          f"{name}: installs docker/node.yaml as /etc/atoma/node.yaml")
    check(any(l.startswith("CMD ") and '"/etc/atoma/node.yaml"' in l and '"--config"' in l
              for l in final), f"{name}: CMD starts the node with --config /etc/atoma/node.yaml")
    check(any(l.startswith("ENTRYPOINT ") and "atoma-node" in l for l in final),
          f"{name}: ENTRYPOINT is atoma-node")
    check(image_config["node.key_file"] in text,
          f"{name}: documents the key path docker/node.yaml reads ({image_config['node.key_file']})")
    volumes = " ".join(l for l in final if l.upper().startswith("VOLUME "))
    check(image_config["node.data_dir"] in volumes,
          f"{name}: the data dir {image_config['node.data_dir']} is a VOLUME")
    check(any(l.upper() == "STOPSIGNAL SIGTERM" for l in final), f"{name}: STOPSIGNAL SIGTERM")
    grace = re.search(r"docker stop -t (\d+)", text) or re.search(r"stop_grace_period: (\d+)s", text)
    drain_s = defaults["shutdown.drain_deadline_ms"] / 1000
    check(grace is None or int(grace.group(1)) >= drain_s + 5,
          f"{name}: the stop timeout it advises covers the drain deadline ({drain_s:.0f} s) + 5 s")
    # The setup script runs with flags it knows.
    setup = open(os.path.join(src, "scripts", "setup.sh")).read()
    setup_lines = [l for l in lines if "scripts/setup.sh" in l and l.startswith("RUN ")]
    check(setup_lines, f"{name}: runs scripts/setup.sh (the README's setup)")
    for l in setup_lines:
        for flag in re.findall(r"scripts/setup\.sh((?:\s+--[a-z-]+)*)", l)[0].split():
            check(re.search(r"^\s*" + re.escape(flag) + r"\)", setup, re.M) is not None,
                  f"{name}: scripts/setup.sh accepts {flag}")
    check("runtime-packages.sh" in text, f"{name}: derives its runtime packages from the binaries")
    check("--preset release" in text, f"{name}: builds the release preset")
    return text


def check_runtime_packages(src, node, cli):
    if shutil.which("dpkg-query") is None or shutil.which("readelf") is None:
        print("skip runtime-packages.sh: no dpkg-query or readelf here")
        return
    out = subprocess.run(["bash", os.path.join(src, "docker", "runtime-packages.sh"), node, cli],
                         capture_output=True, text=True)
    packages = out.stdout.split()
    check(out.returncode == 0 and packages,
          "docker/runtime-packages.sh resolves every library of atoma-node and atoma-cli to a "
          f"package ({out.stderr.strip() or len(packages)})")
    check(any(p.startswith("libtorch") for p in packages) or "libtorch" not in " ".join(
        subprocess.run(["ldd", node], capture_output=True, text=True).stdout.split()),
          "docker/runtime-packages.sh lists the libtorch package atoma-node loads")
    check(packages == sorted(set(packages)), "docker/runtime-packages.sh prints sorted, unique names")


def mounts(service):
    """[(source, target, read_only)] of a compose service's short-syntax volumes."""
    result = []
    for v in service.get("volumes", []):
        parts = v.split(":")
        result.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return result


def mount_for(service, path):
    """The mount of `service` that holds `path` (the longest target that prefixes it)."""
    best = None
    for source, target, ro in mounts(service):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[1]):
                best = (source, target, ro)
    return best


def check_compose(src, config_check, defaults):
    docker_dir = os.path.join(src, "docker")
    compose_path = os.path.join(docker_dir, "compose.yaml")
    compose = yaml.safe_load(open(compose_path))
    services = compose["services"]
    declared = set((compose.get("volumes") or {}).keys())
    nodes = sorted(s for s in services if re.fullmatch(r"node\d+", s))
    check(len(nodes) == 3, f"compose: three nodes ({', '.join(nodes)})")
    for name, service in services.items():
        check(str(service.get("user", "atoma")) not in ("root", "0", "0:0"),
              f"compose: {name} does not run as root")
        for source, target, _ in mounts(service):
            if not source.startswith((".", "/")):
                check(source in declared, f"compose: {name} mounts the declared volume {source}")
            else:
                check(os.path.exists(os.path.join(docker_dir, source)),
                      f"compose: {name} mounts {source}, which exists")
    config_files = {}
    for n in nodes:
        m = [s for s, t, ro in mounts(services[n]) if t == "/etc/atoma/node.yaml" and ro]
        if check(len(m) == 1, f"compose: {n} mounts its config read-only at /etc/atoma/node.yaml"):
            config_files[n] = os.path.normpath(os.path.join(docker_dir, m[0]))
    parsed = dict(zip(config_files, parse_configs(config_check, list(config_files.values()))))
    drain_s = defaults["shutdown.drain_deadline_ms"] / 1000
    ledgers = set()
    host_ports = []
    for n, cfg in parsed.items():
        if cfg is None:
            continue
        service = services[n]
        api = port_of(cfg["api.listen"])
        check(cfg["consensus.advertise"] == f"{n}:{api}",
              f"compose: {n} advertises {cfg['consensus.advertise']}, its service name and port")
        key = mount_for(service, cfg["node.key_file"])
        check(key is not None and key[2], f"compose: {n}'s key {cfg['node.key_file']} is on a "
              "read-only mount")
        data = mount_for(service, cfg["node.data_dir"])
        check(data is not None and not data[2] and data[1] == cfg["node.data_dir"],
              f"compose: {n}'s data dir {cfg['node.data_dir']} is a writable volume of its own")
        for model in cfg["models"]:
            m = mount_for(service, model["path"])
            check(m is not None and m[2], f"compose: {n}'s model {model['path']} is mounted "
                  "read-only")
        check(cfg["ledger.backend"] == "embedded", f"compose: {n} uses the embedded ledger")
        ledger = mount_for(service, cfg["ledger.path"])
        if check(ledger is not None and not ledger[2],
                 f"compose: {n}'s ledger {cfg['ledger.path']} is on a writable mount"):
            ledgers.add((ledger[0], cfg["ledger.path"]))
        listening = {port_of(cfg[k]) for k in ("api.listen", "http.listen", "metrics.listen")}
        for p in service.get("ports", []):
            host, container = str(p).rsplit(":", 1)[0], int(str(p).rsplit(":", 1)[1])
            host_ports.append(host)
            check(container in listening, f"compose: {n} publishes {p}, a port its config "
                  "listens on")
        check(seconds(service.get("stop_grace_period", "10s")) >= drain_s + 5,
              f"compose: {n}'s stop_grace_period covers the drain deadline ({drain_s:.0f} s) + 5 s")
        dep = (service.get("depends_on") or {}).get("init", {})
        check(dep.get("condition") == "service_completed_successfully",
              f"compose: {n} starts after init succeeded")
    check(len(ledgers) == 1, "compose: every node opens the same ledger file on the same volume")
    check(len(host_ports) == len(set(host_ports)), "compose: no host port is published twice")
    # The init service makes every key the nodes read, and the ledger they open.
    init = open(os.path.join(docker_dir, "devnet", "init.sh")).read()
    stake = open(os.path.join(docker_dir, "devnet", "stake.sh")).read()
    check("atoma-cli keygen" in init and "atoma-cli model synth" in init,
          "compose: init.sh generates keys (atoma-cli keygen) and synthesizes the model")
    key_names = re.search(r"for name in ([\w ]+); do", init)
    made = set(key_names.group(1).split()) if key_names else set()
    for n, cfg in parsed.items():
        if cfg:
            base = os.path.basename(cfg["node.key_file"])
            check(base[:-len(".key")] in made and "/etc/atoma/keys" in init,
                  f"compose: init.sh generates {n}'s key ({base})")
            check(any(cfg["ledger.path"] == l for _, l in ledgers) and cfg["ledger.path"] in init
                  and cfg["ledger.path"] in stake,
                  f"compose: init.sh creates and stake.sh funds the ledger {n} opens")
            check(cfg["models"][0]["path"].rsplit("/", 1)[0] in init,
                  f"compose: init.sh writes the model {n} serves")
    check(services.get("stake", {}).get("depends_on", {}).keys() >= set(nodes),
          "compose: stake waits for the nodes")
    # The real thing, where a compose plugin is installed (no daemon needed for `config`).
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        out = subprocess.run([docker, "compose", "-f", compose_path, "config", "-q"],
                             capture_output=True, text=True)
        check(out.returncode == 0, "docker compose config accepts docker/compose.yaml " +
              out.stderr.strip())
    else:
        print("skip docker compose config: no compose plugin here")


def check_systemd(src, node, defaults):
    path = os.path.join(src, "config", "atoma-node.service")
    text = open(path).read()
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            settings.setdefault(k.strip(), []).append(v.strip())
    one = lambda k: (settings.get(k) or [""])[-1]
    check(one("User") not in ("", "root", "0"), f"systemd: User={one('User')}, not root")
    exec_start = one("ExecStart").split()
    check(exec_start and exec_start[0].endswith("/atoma-node") and "--config" in exec_start,
          "systemd: ExecStart runs atoma-node --config FILE")
    for k, v in (("Restart", "on-failure"), ("KillSignal", "SIGTERM"),
                 ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                 ("RestartPreventExitStatus", "2")):
        check(one(k) == v, f"systemd: {k}={v}")
    for k in ("ReadWritePaths", "LoadCredential", "LimitNOFILE"):
        check(one(k) != "", f"systemd: {k} is set")
    drain_s = defaults["shutdown.drain_deadline_ms"] / 1000
    check(seconds(one("TimeoutStopSec")) >= drain_s + 5,
          f"systemd: TimeoutStopSec={one('TimeoutStopSec')} covers the drain deadline "
          f"({drain_s:.0f} s) + 5 s")
    cred = one("LoadCredential").split(":")[0]
    check(f"/run/credentials/{os.path.basename(path)}/{cred}" in text,
          f"systemd: documents the key path the credential {cred} gets")
    check(any(one("ReadWritePaths").startswith(p) for p in ("/var/lib/atoma",)),
          "systemd: the writable path is /var/lib/atoma (the data dir it documents)")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("skip systemd-analyze verify: not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # verify wants ExecStart's binary to exist: point it at the one built here.
        unit = os.path.join(tmp, os.path.basename(path))
        with open(unit, "w") as f:
            f.write(text.replace(exec_start[0], os.path.abspath(node)))
        out = subprocess.run([analyze, "verify", unit], capture_output=True, text=True)
        # It warns on stderr but exits 0 for unknown keys and bad values: any output fails.
        check(out.returncode == 0 and not out.stderr.strip() and not out.stdout.strip(),
              "systemd-analyze verify config/atoma-node.service " + out.stderr.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--config-check", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--cli", required=True)
    args = ap.parse_args()
    src = args.source_dir

    defaults, image_config = parse_configs(
        args.config_check, ["--defaults", os.path.join(src, "docker", "node.yaml")])
    if image_config is None:
        print("FAILED: docker/node.yaml does not parse")
        return 1
    # The image's gRPC port is the node's default one, on every interface instead of loopback.
    check(port_of(image_config["api.listen"]) == port_of(defaults["api.listen"]),
          f"docker/node.yaml: gRPC on the default port {port_of(defaults['api.listen'])}")
    check(image_config["api.listen"].startswith("0.0.0.0:"),
          "docker/node.yaml: listens on every interface of the container")
    for name in ("Dockerfile", "Dockerfile.cuda"):
        check_dockerfile(src, name, image_config, defaults)
    cuda = open(os.path.join(src, "docker", "Dockerfile.cuda")).read()
    check("--no-torch" in cuda and "--build-context libtorch=" in cuda and
          "COPY --from=libtorch" in cuda,
          "Dockerfile.cuda: takes libtorch from the operator's build context, not Debian's")
    check_runtime_packages(src, args.node, args.cli)
    check_compose(src, args.config_check, defaults)
    check_systemd(src, args.node, defaults)
    if failures:
        print(f"\n{len(failures)} check(s) failed")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
