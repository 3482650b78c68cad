# Shared helpers: config validation, paths, and the per-stage settings passed to
# `speciesgan` as JSON.  A stage receives only its own config section, so that
# Snakemake's params trigger reruns exactly the stages whose settings changed.
import json
import os
import re

from speciesgan.classifier.judge import judge_classifier_settings
from speciesgan.config import demo_key, demo_key_pattern, validate_config
from speciesgan.data.sources import demo_url, source, stored_name
from speciesgan.util.errors import SpeciesganError
from speciesgan.runtime.fatal import refuse_retry_after_fatal
from speciesgan.runtime.preemption import allow_requeue_in_job
from speciesgan.runtime.slurm_site import TRAINING_SLURM_EXTRA
from speciesgan.workflow.code_version import stage_digest

try:
    config.update(validate_config(config))
except SpeciesganError as problem:
    raise WorkflowError(f"speciesgan: {problem}") from None

RESULTS = config["results_dir"].rstrip("/")
DOWNLOADS = config["downloads_dir"].rstrip("/")
USED = config["use_datasets"]
SHARDS = [f"{i:03d}" for i in range(config["preprocess"]["shards"])]
THREADS = config["threads"]


def threads_for(rule):
    """A rule's job threads: stage_threads.<rule> when given, else threads."""
    return (config.get("stage_threads") or {}).get(rule, THREADS)


wildcard_constraints:
    # a dataset's name, or under downloads_dir a demo dataset's name.<run key>
    dataset=f"[A-Za-z0-9_]+([.]{demo_key_pattern()})?",
    key=demo_key_pattern(),
    archive="[^/]+",
    shard="[0-9]{3}",
    role="guide|eval|judge",


def as_json(value):
    """Settings as canonical JSON: equal settings give an equal params string."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# Retries of the long (checkpointed) stages belong to the Snakemake that submits
# jobs, never to the one that runs a single job inside its allocation.  The SLURM
# executor starts that inner Snakemake with `--mode remote` and `--retries 0`, but
# the retries a Snakefile declares win over the flag (measured: declared 3, run 4
# times under --retries 0), so a segment stopped by the time limit was retried
# inside the dying job, which had no time left.  workflow.remote_exec is true only
# in that inner Snakemake; a user's own sbatch script running `snakemake --cores`
# is not remote, and there retrying in place is right.
IN_SUBMITTED_JOB = workflow.remote_exec
# there, a training segment stopped by the time limit may requeue its own SLURM job
allow_requeue_in_job(IN_SUBMITTED_JOB)


def retries_outside_job(retries):
    """A rule's `retries`: the budget in the submitting Snakemake, 0 inside a job."""
    return 0 if IN_SUBMITTED_JOB else retries


def memory_per_attempt(base_mb):
    """mem_mb that grows by half of ``base_mb`` with each retry, up to twice it.

    A job killed for memory gets more on its retry.  Capped because the training
    rules' retries are mostly resumptions after a time limit, not memory failures.
    """

    def mem_mb(wildcards, attempt):
        return int(base_mb * min(1 + (attempt - 1) / 2, 2))

    return mem_mb


def code(command):
    """``code=<digest>`` for a rule's params: the code ``speciesgan COMMAND`` runs.

    A digest of the source of every speciesgan module the subcommand imports
    (speciesgan.workflow.code_version), so editing that code reruns the rule, as a
    changed setting does.  Nothing with rerun_on_code_change: false.
    """
    digest = stage_digest(command) if config["rerun_on_code_change"] else None
    return {"code": digest} if digest else {}


def pick(section, *keys):
    """The subset of a config section one stage depends on."""
    return {key: config[section][key] for key in keys if key in config[section]}


def dataset_files(name):
    """Archive name -> {url, sha256} for one dataset, official URLs unless overridden."""
    spec = config["datasets"][name]
    fmt = spec["format"]
    files = {}
    for archive, official in source(fmt).archives.items():
        if fmt.startswith("demo_"):
            default = demo_url(name, archive, demo_key(config, name))
        else:
            default = official
        given = spec.get("files", {}).get(archive, {})
        files[archive] = {
            "url": given.get("url", default),
            "sha256": given.get("sha256"),
        }
    return files


def stored(name):
    """A dataset's folder under downloads_dir (demo data: keyed by its settings)."""
    return stored_name(name, demo_key(config, name))


def dataset_of(folder):
    """The dataset a folder under downloads_dir belongs to (``stored`` undone)."""
    return re.sub(f"[.]{demo_key_pattern()}$", "", folder)


def local_input(url):
    """A relative file:// URL names a file this workflow may build (the demo archives)."""
    path = url[len("file://") :] if url.startswith("file://") else None
    return [path] if path and not path.startswith("/") else []


def source_root(name):
    """Where a dataset's files are read from: in place for local formats, else extracted."""
    spec = config["datasets"][name]
    if source(spec["format"]).local:
        return spec["path"]
    return f"{DOWNLOADS}/{stored(name)}/extracted"


URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def detections_file(name):
    """A dataset's detections JSON: downloaded when given as a URL, else the local path."""
    given = config["datasets"][name]["detections"]
    return f"{DOWNLOADS}/{stored(name)}/detections.json" if URL.match(given) else given


def detection_inputs():
    return [
        detections_file(name)
        for name in USED
        if "detections" in config["datasets"][name]
    ]


def source_entry(name):
    """One dataset as the index step's --sources JSON lists it (options only when any)."""
    spec = config["datasets"][name]
    entry = {
        "name": name,
        "format": spec["format"],
        "category": spec["category"],
        "root": source_root(name),
    }
    if "detections" in spec:
        entry["options"] = {
            "detections": detections_file(name),
            **spec.get("camera_trap", {}),
        }
    return entry


def archives(wildcards):
    return [
        f"{DOWNLOADS}/{wildcards.dataset}/archives/{archive}"
        for archive in dataset_files(dataset_of(wildcards.dataset))
    ]


def shard_arrays():
    return expand(f"{RESULTS}/data/shards/shard-{{shard}}.npy", shard=SHARDS)


def classifier_term_on():
    return config["gan"].get("classifier_loss_weight", 0.1) > 0


def guide_classifier(wildcards):
    """The GAN needs the guide classifier only while its loss term is on."""
    return [f"{RESULTS}/classifier/guide/model.pt"] if classifier_term_on() else []


def classifier_roles():
    guide_needed = classifier_term_on() or any(
        variant_gan(name).get("classifier_loss_weight", 0.1) > 0
        for name in ablation_variants()
    )
    roles = ["guide", "eval"] if guide_needed else ["eval"]
    return roles + ["judge"]


def classifier_settings(role):
    """The training settings of one classifier role: the judge has its own recipe."""
    if role == "judge":
        return judge_classifier_settings(config["judge"])
    return config["classifier"]


CLASSIFIER_SEED_OFFSETS = {"guide": 0, "eval": 1000, "judge": 2000}


# ---------------------------------------------------------------- ablation
def ablation_variants():
    """Variant name -> spec, when the ablation is enabled (configs/ablation.yaml)."""
    ablation = config.get("ablation") or {}
    return ablation.get("variants", {}) if ablation.get("enabled") else {}


def main_gan_settings():
    """The gan settings a training run depends on (the GPU count is how, not what)."""
    return {k: v for k, v in config["gan"].items() if k != "gpus"}


def variant_gan(name):
    return {**main_gan_settings(), **ablation_variants()[name].get("gan", {})}


def variant_run(name):
    """The training run a variant is scored from: "main", or the first variant with its settings."""
    settings = variant_gan(name)
    if settings == main_gan_settings():
        return "main"
    return next(
        other for other in ablation_variants() if variant_gan(other) == settings
    )


def run_generator(run):
    if run == "main":
        return f"{RESULTS}/gan/generator.pt"
    return f"{RESULTS}/ablation/runs/{run}/generator.pt"


def run_training_time(run):
    """Wall and CPU seconds of a training run, summed over its job segments."""
    if run == "main":
        return f"{RESULTS}/gan/training_time.json"
    return f"{RESULTS}/ablation/runs/{run}/training_time.json"


def variant_metrics(name):
    """A variant identical to the main model (EMA weights) reuses the main evaluation."""
    weights = ablation_variants()[name].get("weights", "ema")
    if variant_run(name) == "main" and weights == "ema":
        return f"{RESULTS}/eval/metrics.json"
    return f"{RESULTS}/ablation/{name}/metrics.json"
