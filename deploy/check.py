#!/usr/bin/env python3
"""Checks the fleet manifests in deploy/ offline, against the real `strata` binary.

Usage: python3 deploy/check.py PATH/TO/strata

1. Kubernetes (deploy/kubernetes/*.yaml): `kubernetes-validate --strict` (from PyPI; it
   carries the API schemas, so no cluster is needed; `kubectl apply --dry-run=client` is
   not used because it asks a server for the API's resource list even then), then the
   fields the fleet relies on: an Indexed Job whose completions, parallelism and SHARDS
   agree, restartPolicy Never, the pod failure policy naming the container, every volume
   mount backed by a volume and every claim by the PersistentVolumeClaim.
2. GitHub Actions (deploy/github-actions/fleet-sweep.yml): it parses, the matrix lists
   shards 0..SHARDS-1, the merge job runs after the sweep even when a shard failed, and no
   `run:` script uses a `${{ }}` expression (they take everything from the environment).
3. Each of them, and deploy/slurm/sweep-array.sh, is then run for real on a small range
   with the binary given: the pods' and the jobs' shell commands as the manifests have them,
   with the index variables the batch system would set (JOB_COMPLETION_INDEX, the matrix's
   SHARD, SLURM_ARRAY_TASK_*), then the merge step; the merged summary must hold every
   seed once and agree, count for count, with a single-process sweep of the range.

Exit status 0 when every check passes; 1 with a message naming the file otherwise.
"""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

DEPLOY = os.path.dirname(os.path.abspath(__file__))
SEEDS = "0..24"
SEED_COUNT = 24
# The default, which the Kubernetes Job leaves as it is.
OPS = "1000"
# Fields that describe how a sweep was split or timed, not what its seeds did.
NOT_COUNTS = {"shard_count", "shards", "seed_ranges", "elapsed_s", "seeds_per_s",
              "ops_per_s", "recoveries_per_s"}


class Failed(Exception):
    pass


def need(condition, where, what):
    if not condition:
        raise Failed(f"{where}: {what}")


def load_all(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def check_kubernetes():
    files = [os.path.join(DEPLOY, "kubernetes", n) for n in ("sweep-job.yaml", "merge-job.yaml")]
    tool = shutil.which("kubernetes-validate")
    need(tool, "kubernetes-validate", "not installed (python3 -m pip install kubernetes-validate)")
    run = subprocess.run([tool, "--strict", *files], capture_output=True, text=True)
    need(run.returncode == 0, "kubernetes-validate --strict", run.stdout + run.stderr)
    docs = {path: load_all(path) for path in files}
    sweep_docs, merge_docs = docs[files[0]], docs[files[1]]
    claims = {d["metadata"]["name"] for d in sweep_docs if d["kind"] == "PersistentVolumeClaim"}
    jobs = [(path, d) for path, ds in docs.items() for d in ds if d["kind"] == "Job"]
    need(len(jobs) == 2, "deploy/kubernetes", f"expected two Jobs, found {len(jobs)}")
    for path, job in jobs:
        where = f"{os.path.relpath(path, DEPLOY)} ({job['metadata']['name']})"
        pod = job["spec"]["template"]["spec"]
        need(pod.get("restartPolicy") == "Never", where, "restartPolicy must be Never")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                need(mount["name"] in volumes, where, f"mount {mount['name']} has no volume")
        for volume in volumes.values():
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            need(claim is None or claim in claims, where, f"claim {claim} is not defined")
    sweep_job = next(d for d in sweep_docs if d["kind"] == "Job")
    spec = sweep_job["spec"]
    where = "kubernetes/sweep-job.yaml"
    need(spec.get("completionMode") == "Indexed", where, "completionMode must be Indexed")
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    shards = int(env["SHARDS"])
    need(spec["completions"] == shards, where, f"completions {spec['completions']} != SHARDS {shards}")
    need(spec["parallelism"] <= shards, where, "parallelism above the shard count")
    for rule in spec.get("podFailurePolicy", {}).get("rules", []):
        if "onExitCodes" in rule:
            need(rule["onExitCodes"]["containerName"] == container["name"], where,
                 "the pod failure policy names another container")
    merge_job = next(d for d in merge_docs if d["kind"] == "Job")
    return sweep_job, merge_job, shards


def check_github():
    path = os.path.join(DEPLOY, "github-actions", "fleet-sweep.yml")
    where = "github-actions/fleet-sweep.yml"
    (workflow,) = load_all(path)
    # YAML 1.1 reads the key `on` as true.
    triggers = workflow.get("on", workflow.get(True))
    need(triggers and "workflow_dispatch" in triggers, where, "no workflow_dispatch trigger")
    jobs = workflow["jobs"]
    need({"build", "sweep", "merge"} <= set(jobs), where, "needs jobs build, sweep and merge")
    shards = int(workflow["env"]["SHARDS"])
    matrix = jobs["sweep"]["strategy"]["matrix"]["shard"]
    need(matrix == list(range(shards)), where, f"matrix {matrix} is not shards 0..{shards - 1}")
    need(jobs["sweep"]["strategy"].get("fail-fast") is False, where, "fail-fast must be false")
    need("sweep" in jobs["merge"]["needs"], where, "merge must need sweep")
    need(str(jobs["merge"].get("if", "")).startswith("always()"), where, "merge must run always()")
    for name, job in jobs.items():
        for step in job["steps"]:
            need("${{" not in step.get("run", ""), where, f"job {name}: a run script uses ${{{{ }}}}")
    return workflow, shards


def sh(script, env, cwd, where, shell=("sh", "-c")):
    run = subprocess.run([*shell, script], env=env, cwd=cwd, capture_output=True, text=True)
    need(run.returncode == 0, where, f"exit {run.returncode}\n{run.stdout}{run.stderr}")


def base_env(strata):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "JOB_COMPLETION_INDEX"))}
    env["PATH"] = os.path.dirname(os.path.abspath(strata)) + os.pathsep + env.get("PATH", "")
    return env


def check_merged(path, single, shards, where):
    with open(path) as f:
        merged = json.load(f)
    need(merged["seeds"] == SEED_COUNT, where, f"merged {merged['seeds']} seeds, want {SEED_COUNT}")
    need(merged["shards"] == list(range(shards)), where, f"merged shards {merged['shards']}")
    for key, value in single.items():
        if key not in NOT_COUNTS:
            need(merged.get(key) == value, where,
                 f"merged {key} = {merged.get(key)!r}, the single sweep has {value!r}")


def run_kubernetes(strata, sweep_job, merge_job, shards, single, tmp):
    results = os.path.join(tmp, "k8s-results")
    for job in (sweep_job, merge_job):
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        mount = container["volumeMounts"][0]["mountPath"]
        env = base_env(strata)
        for e in container.get("env", []):
            env[e["name"]] = e["value"].replace(mount, results)
        env["SEEDS"] = SEEDS
        script = container["args"][0].replace(mount, results)
        need(container["command"] == ["sh", "-c"], "kubernetes", "containers run sh -c ARGS")
        indexes = range(shards) if job is sweep_job else [None]
        for index in indexes:
            if index is not None:
                env["JOB_COMPLETION_INDEX"] = str(index)
            sh(script, env, tmp, f"kubernetes/{job['metadata']['name']} pod {index}")
    out = os.path.join(results, "strata-sweep")
    check_merged(os.path.join(out, "merged.json"), single, shards, "kubernetes merge")


def run_github(strata, workflow, shards, single, tmp):
    env = base_env(strata)
    env.update({"SHARDS": str(shards), "SEEDS": SEEDS, "OPS": OPS})
    bash = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")
    (sweep_step,) = [s for s in workflow["jobs"]["sweep"]["steps"] if "run" in s]
    (merge_step,) = [s for s in workflow["jobs"]["merge"]["steps"] if "run" in s]
    uses = lambda step, action: step.get("uses", "").startswith(action)
    (upload,) = [s for s in workflow["jobs"]["sweep"]["steps"] if uses(s, "actions/upload-artifact")]
    (download,) = [s for s in workflow["jobs"]["merge"]["steps"]
                   if uses(s, "actions/download-artifact") and "pattern" in s["with"]]
    merge_dir = os.path.join(tmp, "gha-merge")
    os.makedirs(merge_dir)
    for shard in range(shards):
        work = os.path.join(tmp, f"gha-shard-{shard}")
        os.makedirs(work)
        shutil.copy(strata, os.path.join(work, "strata"))
        sh(sweep_step["run"], dict(env, SHARD=str(shard)), work, f"github sweep shard {shard}", bash)
        # What upload-artifact takes and download-artifact (one folder per artifact, under
        # its `path`, for the names its `pattern` matches) gives the merge job.
        name = upload["with"]["name"].replace("${{ matrix.shard }}", str(shard))
        if not fnmatch.fnmatch(name, download["with"]["pattern"]):
            continue
        dest = os.path.join(merge_dir, download["with"].get("path", "."), name)
        os.makedirs(dest)
        for item in upload["with"]["path"].split():
            source = os.path.join(work, item)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(dest, item))
            elif os.path.exists(source):
                shutil.copy(source, dest)
    shutil.copy(strata, os.path.join(merge_dir, "strata"))
    sh(merge_step["run"], env, merge_dir, "github merge", bash)
    check_merged(os.path.join(merge_dir, "merged.json"), single, shards, "github merge")


def run_slurm_script(strata, single, tmp):
    """deploy/slurm/sweep-array.sh as the tasks of `--array=1-3` would run it."""
    script = os.path.join(DEPLOY, "slurm", "sweep-array.sh")
    out = os.path.join(tmp, "slurm-out")
    for task in (1, 2, 3):
        env = base_env(strata)
        env.update({"STRATA": os.path.abspath(strata), "STRATA_OUT": out,
                    "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": str(task),
                    "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "3",
                    "SLURM_ARRAY_TASK_STEP": "1", "SLURM_ARRAY_TASK_COUNT": "3"})
        sh(f'bash "{script}" --seeds {SEEDS}', env, tmp, f"slurm task {task}")
    summaries = [os.path.join(out, f"summary-{t}.json") for t in (1, 2, 3)]
    merged = os.path.join(tmp, "slurm-merged.json")
    run = subprocess.run([strata, "report", "merge", "--out", merged, *summaries],
                         capture_output=True, text=True)
    need(run.returncode == 0, "slurm merge", run.stderr)
    check_merged(merged, single, 3, "slurm merge")


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    strata = sys.argv[1]
    try:
        need(os.access(strata, os.X_OK), strata, "is not an executable strata binary")
        sweep_job, merge_job, k8s_shards = check_kubernetes()
        print(f"kubernetes: the manifests pass kubernetes-validate --strict; {k8s_shards} shards")
        workflow, gha_shards = check_github()
        print(f"github actions: the workflow parses; {gha_shards} shards")
        with tempfile.TemporaryDirectory() as tmp:
            run = subprocess.run([strata, "sweep", "--seeds", SEEDS, "--json",
                                  "--corpus", os.path.join(tmp, "single-corpus")],
                                 capture_output=True, text=True)
            need(run.returncode == 0, "single-process sweep", run.stderr)
            single = json.loads(run.stdout)
            run_kubernetes(strata, sweep_job, merge_job, k8s_shards, single, tmp)
            print(f"kubernetes: {k8s_shards} pods' commands and the merge job's ran; the merge equals the single sweep")
            run_github(strata, workflow, gha_shards, single, tmp)
            print(f"github actions: {gha_shards} matrix entries' steps and the merge ran; the merge equals the single sweep")
            run_slurm_script(strata, single, tmp)
            print("slurm: sweep-array.sh as 3 array tasks (ids 1-3) and the merge ran; the merge equals the single sweep")
    except Failed as failure:
        print(f"deploy/check.py: {failure}", file=sys.stderr)
        return 1
    except (KeyError, TypeError, ValueError, StopIteration) as error:
        print(f"deploy/check.py: a manifest lacks a field the fleet relies on: {error!r}", file=sys.stderr)
        return 1
    print("deploy: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
