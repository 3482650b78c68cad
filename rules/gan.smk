# Conditional GAN training.  Resume state lives in checkpoints/ beside the
# outputs, not among them: Snakemake deletes a failed job's outputs, and the
# checkpoint is exactly what a retried (time-limited or preempted) job needs.
#
# A run longer than one job's time limit is trained in segments, each a new job:
# on SLURM a segment stopped by the time limit after training some steps requeues
# its own job (same job id, fresh limit: speciesgan.runtime.preemption); any other ending
# (scancel, preemption's SIGTERM, a crash, a kill) fails the job, and this
# Snakemake submits the next attempt.  The retry budget (30 x the profile's 24 h)
# is counted here, never inside the job (retries_outside_job, rules/common.smk).
# Generous on purpose: after two attempts in a row that crashed or died without
# progress training refuses to start, in seconds (speciesgan.gan.segments), and
# an error no retry can fix (no usable GPU, a bad setting, a damaged checkpoint)
# is recorded beside the checkpoints, so the `fatal_stop` resource ends the job
# instead of submitting it again (speciesgan.runtime.fatal).  A new `snakemake` call
# starts a new budget.
TRAIN_SEGMENTS = 30


rule train_gan:
    input:
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=guide_classifier,
    output:
        generator=f"{RESULTS}/gan/generator.pt",
        log=report(
            f"{RESULTS}/gan/training_log.csv",
            caption="../report/training_log.rst",
            category="GAN training",
        ),
        snapshots=f"{RESULTS}/gan/snapshots.pt",
        # wall and CPU seconds of every segment: the benchmark file has the last one only
        timing=f"{RESULTS}/gan/training_time.json",
        # the snapshot selection's rule, every score and the step exported
        selection=f"{RESULTS}/gan/selection.json",
    log:
        f"{RESULTS}/logs/train_gan.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_gan.tsv"
    retries: retries_outside_job(TRAIN_SEGMENTS - 1)
    threads: threads_for("train_gan")
    resources:
        # sbatch --gpus N --nodes=1 under the SLURM profile; train-gan starts one
        # process per GPU (torchrun) itself when N > 1.  A resource, not a param: the
        # GPU count changes how training runs, not what it produces, so changing it
        # reruns nothing.
        gpu=config["gan"]["gpus"],
        nodes=1,
        mem_mb=memory_per_attempt(12000),
        runtime=1440,  # minutes; resumed from the checkpoint if this runs out
        # raises before a retry whose last attempt stopped on an error a retry
        # cannot fix, ending the run with that error (speciesgan.runtime.fatal)
        fatal_stop=refuse_retry_after_fatal(f"{RESULTS}/gan/checkpoints"),
        # --signal=USR1@300 (no "B:" prefix): five minutes before the time limit
        # SLURM sends SIGUSR1 to every process of the job step that runs the rule,
        # so the training process itself receives it, writes a checkpoint and exits
        # with status 75; the next segment resumes in a new job.  ("B:USR1"
        # would signal only the batch shell.)  SLURM may send it up to a minute
        # early.  Training also reads the job's end time itself (speciesgan.runtime.slurm_time).
        slurm_extra=TRAINING_SLURM_EXTRA,
    params:
        **code("train-gan"),
        settings=as_json(main_gan_settings()),
        # a list of words: each is quoted on its own (`:q`)
        classifier=lambda w, input: (
            ["--classifier", input.classifier] if input.classifier else []
        ),
        checkpoints=f"{RESULTS}/gan/checkpoints",
        seed=config["seed"],
    shell:
        "speciesgan train-gan --gpus {resources.gpu:q} --manifest {input.manifest:q}"
        " {params.classifier:q} --out-generator {output.generator:q} --out-log {output.log:q}"
        " --out-snapshots {output.snapshots:q} --out-timing {output.timing:q}"
        " --out-selection {output.selection:q}"
        " --checkpoint-dir {params.checkpoints:q} --seed {params.seed:q} --threads {threads:q}"
        " --settings {params.settings:q} >> {log:q} 2>&1"


rule sample:
    input:
        f"{RESULTS}/gan/generator.pt",
    output:
        report(
            directory(f"{RESULTS}/samples"),
            patterns=["{name}.png"],
            caption="../report/samples.rst",
            category="Samples",
            labels={"grid": "{name}"},
        ),
    log:
        f"{RESULTS}/logs/sample.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample.tsv"
    resources:
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(8000),
        runtime=60,
    params:
        **code("sample"),
        settings=as_json(config["sample"]),
        seed=config["seed"],
    shell:
        "speciesgan sample --generator {input:q} --out-dir {output:q} --seed {params.seed:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
