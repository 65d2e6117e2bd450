# Copyright: multihome contributors
# Apache License 2.0 (see the repository's pyproject.toml)
"""Ansible module ``multihome.guest.multihome``: run multihome on the managed host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: multihome
short_description: Source-based policy routing for multi-port VMs with multihome
version_added: "0.1.0"
description:
  - Runs C(multihome) on the managed host so that every port of a multi-port VM routes
    correctly (a routing table and C(ip rule)s per port).
  - C(state=applied) runs C(multihome apply); C(state=persisted) also runs C(multihome persist)
    so that the distribution's own network configuration keeps the policy across renews and
    reboots; C(state=absent) runs C(multihome reset) and C(multihome unpersist).
  - The plan is read first with C(multihome plan --json). In check mode nothing else runs; the
    plan is returned and, with C(--diff), shown. Otherwise C(changed) comes from
    C(multihome apply --detailed-exit-codes) (plus the files persist, reset and unpersist
    touched), so a second run reports no change.
  - Failures carry multihome's own message (what, where, how to fix it) and its C(--json)
    error document.
  - The returned facts (C(ansible_facts.multihome)) are C(multihome status --json).
options:
  state:
    description:
      - C(applied) applies the policy to the kernel, C(persisted) applies it and writes it
        into the system's network configuration, C(absent) removes what multihome set up
        and the files it persisted.
    type: str
    choices: [applied, persisted, absent]
    default: applied
  config:
    description:
      - multihome's configuration (see multihome-config(5)) as data. It is validated by
        multihome before anything changes and written to C(ROOT/etc/multihome/config.yaml),
        the file every multihome command (the agent and the boot-time units included)
        reads. Omitted, that file is left as it is.
      - With C(state=absent) the file is removed if this module wrote it.
    type: dict
  root:
    description:
      - multihome's C(--root), under which it reads and writes every file (configuration,
        state directory, persisted files). For images and tests; the default is the host.
    type: path
    default: /
  backend:
    description:
      - The persistence backend for C(state=persisted) (C(multihome persist --backend)).
    type: str
    default: auto
  checks:
    description:
      - Extra post-apply checks (C(multihome apply --check)), such as C(gateways) or an URL;
        a failed check rolls the apply back and the task fails.
    type: list
    elements: str
    default: []
  executable:
    description:
      - The multihome program. Default is C(multihome) on the PATH, or
        C(/usr/local/bin/multihome), C(/opt/multihome/bin/multihome).
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - multihome contributors
"""

EXAMPLES = r"""
- name: Route every port of the VM correctly, and keep it so across reboots
  multihome.guest.multihome:
    state: persisted

- name: Apply with a configuration (the primary port, tables in another range)
  multihome.guest.multihome:
    state: applied
    config:
      primary: eth0
      tables:
        range: [20000, 20999]
    checks: [gateways]

- name: Undo everything multihome set up, in the kernel and on disk
  multihome.guest.multihome:
    state: absent
"""

RETURN = r"""
plan:
  description: C(multihome plan --json), the changes C(multihome apply) would make.
  returned: in check mode, when state is applied or persisted
  type: dict
apply_output:
  description: What C(multihome apply) printed (its changes, then what it verified).
  returned: when state is applied or persisted and not in check mode
  type: list
  elements: str
apply_messages:
  description: What C(multihome apply) said on standard error (the result of each post-apply
    check, notes, a resumed agent).
  returned: when state is applied or persisted and not in check mode
  type: list
  elements: str
persist:
  description: C(multihome persist --json) (with C(dry_run) in check mode).
  returned: when state is persisted
  type: dict
reset:
  description: C(multihome reset --json).
  returned: when state is absent and not in check mode
  type: dict
unpersisted:
  description: The files C(multihome unpersist) removed (would remove, in check mode).
  returned: when state is absent
  type: list
  elements: str
config_file:
  description: The configuration file the C(config) option is written to.
  returned: always
  type: str
error:
  description: multihome's C(--json) error document (code, kind, message, input, path, line,
    column, fix) when it refused or failed.
  returned: failed
  type: dict
ansible_facts:
  description: Facts about the host's routing.
  returned: always
  type: dict
  contains:
    multihome:
      description: C(multihome status --json) after the run.
      type: dict
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

CONFIG_PATH = "etc/multihome/config.yaml"
CONFIG_HEADER = (
    "# Managed by Ansible (multihome.guest.multihome); do not edit: rewritten on every run.\n"
)
NAMES_FILE = "etc/iproute2/rt_tables.d/multihome.conf"
SEARCH = ["/usr/local/bin", "/opt/multihome/bin", "/usr/sbin", "/usr/bin"]


class Multihome:
    """The multihome program on the managed host, with its ``--root``."""

    def __init__(self, module):
        self.module = module
        self.root = module.params["root"]
        executable = module.params["executable"]
        if not executable:
            executable = module.get_bin_path("multihome", required=True, opt_dirs=SEARCH)
        self.executable = executable

    def run(self, args, config=None):
        """Run ``multihome --root ROOT [--config FILE] ARGS``: (rc, stdout, stderr)."""
        argv = [self.executable, "--root", self.root]
        if config is not None:
            argv += ["--config", config]
        return self.module.run_command([*argv, *args])

    def json(self, args, config=None):
        """Run a ``--json`` command; fail the task with multihome's error document."""
        rc, out, err = self.run([*args, "--json"], config)
        try:
            document = json.loads(out) if out.strip() else None
        except ValueError:
            document = None
        if rc != 0 or not isinstance(document, dict):
            self.fail(args, rc, out, err, document)
        return document

    def error_document(self, config=None):
        """multihome's JSON error document for a refusal of ``plan`` (bad configuration or
        input), or None: ``apply`` has no ``--json``; its failures are asked ``plan``."""
        rc, out, _ = self.run(["plan", "--json"], config)
        try:
            document = json.loads(out) if rc != 0 and out.strip() else None
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def fail(self, args, rc, out, err, document=None):
        """Fail the task with what multihome said (its error document when it gave one)."""
        command = "multihome " + " ".join(args)
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict) and error.get("message"):
            message = error["message"]
        else:
            lines = [line for line in err.splitlines() if line.startswith("multihome: error: ")]
            if lines:
                message = "; ".join(line[len("multihome: error: ") :] for line in lines)
            else:
                message = (err.strip() or out.strip() or "no output").splitlines()[-1]
        self.module.fail_json(
            msg=f"{command} failed (exit {rc}): {message}",
            rc=rc,
            stdout=out,
            stderr=err,
            error=error,
        )


def config_text(config):
    """The configuration as the file holds it: JSON (a YAML subset) under our header."""
    return CONFIG_HEADER + json.dumps(config, indent=2, sort_keys=True) + "\n"


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_config(module, path, text):
    """Write the configuration file atomically (mode 0644, directories made as needed)."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    staged = os.path.join(module.tmpdir, "config.yaml")
    with open(staged, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(staged, 0o644)
    module.atomic_move(staged, path)


def present(module, mh, result):
    """``applied`` and ``persisted``. Check mode: the plan (``plan --json``, which also validates
    the configuration) and persist's dry run. Otherwise: apply with the wanted configuration,
    which refuses a bad one before any change; only then is the configuration file written."""
    params = module.params
    path = os.path.join(mh.root, CONFIG_PATH)
    before = read_text(path)
    staged = None
    wanted = before
    if params["config"] is not None:
        wanted = config_text(params["config"])
        staged = os.path.join(module.tmpdir, "candidate.yaml")
        with open(staged, "w", encoding="utf-8") as handle:
            handle.write(wanted)
    config_changed = wanted != before
    diffs = []
    if config_changed:
        diffs.append(
            {
                "before_header": path,
                "after_header": path,
                "before": before or "",
                "after": wanted or "",
            }
        )
    persist_args = ["persist", "--backend", params["backend"]]
    persisting = params["state"] == "persisted"
    if module.check_mode:
        plan = mh.json(["plan"], staged)
        result["plan"] = plan
        lines = [change.get("text", "") for change in plan.get("changes") or []]
        changed = config_changed or bool(lines)
        if persisting:
            result["persist"] = mh.json([*persist_args, "--dry-run"], staged)
            changed = changed or persist_changed(result["persist"])
        result["changed"] = changed
    else:
        args = ["apply", "--detailed-exit-codes", "--confirm-timeout", "0"]
        for check in params["checks"]:
            args += ["--check", check]
        rc, out, err = mh.run(args, staged)
        if rc not in (0, 2):
            mh.fail(args, rc, out, err, mh.error_document(staged))
        result["apply_output"] = out.splitlines()
        result["apply_messages"] = err.splitlines()
        lines = [line for line in out.splitlines() if line[:2] in ("+ ", "- ", "~ ")]
        result["changed"] = rc == 2 or config_changed
        if config_changed:
            write_config(module, path, wanted)
        if persisting:
            result["persist"] = mh.json(persist_args)
            result["changed"] = result["changed"] or persist_changed(result["persist"])
    if lines:
        diffs.append({"prepared": "".join(line + "\n" for line in lines)})
    if module._diff:
        result["diff"] = diffs


def persist_changed(document):
    """Files written or removed, or the running network manager reloaded to use them."""
    activation = document.get("activation") or {}
    return activation.get("state") == "activated" or any(
        f.get("action") != "keep" for f in document.get("files") or []
    )


def absent(module, mh, result):
    """``absent``: reset the kernel, remove the persisted files and our configuration file.
    Check mode predicts from what multihome owns: its rules (``status --json``), its
    table-name file, the files ``unpersist --dry-run`` lists, our configuration file."""
    path = os.path.join(mh.root, CONFIG_PATH)
    before = read_text(path)
    ours = (before or "").startswith(CONFIG_HEADER)
    if module.check_mode:
        status = mh.json(["status"])
        rc, out, err = mh.run(["unpersist", "--dry-run"])
        if rc != 0:
            mh.fail(["unpersist", "--dry-run"], rc, out, err)
        files = removed(out, "would remove ")
        names = os.path.exists(os.path.join(mh.root, NAMES_FILE))
        lines = ["- rule " + rule.get("text", "") for rule in status.get("rules") or []]
        result["changed"] = bool(lines or names or files or ours)
    else:
        reset = mh.json(["reset"])
        result["reset"] = reset
        rc, out, err = mh.run(["unpersist"])
        if rc != 0:
            mh.fail(["unpersist"], rc, out, err)
        files = removed(out, "removed ")
        if ours:
            os.remove(path)
        lines = list(reset.get("changes") or [])
        result["changed"] = bool(lines or reset.get("files") or files or ours)
    result["unpersisted"] = files
    if module._diff:
        diffs = [{"before_header": path, "before": before, "after": ""}] if ours else []
        lines += ["- file " + name for name in files]
        if lines:
            diffs.append({"prepared": "".join(line + "\n" for line in lines)})
        result["diff"] = diffs


def removed(output, prefix):
    return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="applied", choices=["applied", "persisted", "absent"]),
            config=dict(type="dict"),
            root=dict(type="path", default="/"),
            backend=dict(type="str", default="auto"),
            checks=dict(type="list", elements="str", default=[]),
            executable=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    mh = Multihome(module)
    result = {"changed": False, "config_file": os.path.join(mh.root, CONFIG_PATH)}
    if module.params["state"] == "absent":
        absent(module, mh, result)
    else:
        present(module, mh, result)
    result["ansible_facts"] = {"multihome": mh.json(["status"])}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
