# Conditional GAN training.  Resume state lives in checkpoints/ beside the
# outputs, not among them: Snakemake deletes a failed job's outputs, and the
# checkpoint is exactly what a retried (time-limited or preempted) job needs.
#
# Each segment of a run longer than one job's time limit is one attempt, so the
# retry budget is the number of segments a run may take within one `snakemake`
# call (30 x the profile's 24 h).  Generous on purpose: after two attempts in a
# row without progress (a repeating crash, a hang killed at the limit) training
# refuses to start, in seconds, so a broken run does not spend it
# (speciesgan.gan.segments).  A new `snakemake` call starts a new budget.
TRAIN_SEGMENTS = 30


rule train_gan:
    input:
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=guide_classifier,
    output:
        generator=f"{RESULTS}/gan/generator.pt",
        log=f"{RESULTS}/gan/training_log.csv",
        snapshots=f"{RESULTS}/gan/snapshots.pt",
        # wall and CPU seconds of every segment: the benchmark file has the last one only
        timing=f"{RESULTS}/gan/training_time.json",
    log:
        f"{RESULTS}/logs/train_gan.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_gan.tsv"
    retries: TRAIN_SEGMENTS - 1
    conda:
        "../envs/torch.yaml"
    threads: THREADS
    resources:
        # becomes sbatch --gpus N under the SLURM profile; no effect on local runs
        gpu=config["gan"]["gpus"],
    params:
        settings=as_json(main_gan_settings()),
        # lists of words: each is quoted on its own (`:q`)
        launch=(
            ["torchrun", "--standalone", "--nproc-per-node", config["gan"]["gpus"]]
            + ["-m", "speciesgan"]
            if config["gan"]["gpus"] > 1
            else ["speciesgan"]
        ),
        classifier=lambda w, input: (
            ["--classifier", input.classifier] if input.classifier else []
        ),
        checkpoints=f"{RESULTS}/gan/checkpoints",
        seed=config["seed"],
        threads=THREADS,
    shell:
        "{params.launch:q} train-gan --manifest {input.manifest:q} {params.classifier:q}"
        " --out-generator {output.generator:q} --out-log {output.log:q}"
        " --out-snapshots {output.snapshots:q} --out-timing {output.timing:q}"
        " --checkpoint-dir {params.checkpoints:q}"
        " --seed {params.seed:q} --threads {params.threads:q}"
        " --settings {params.settings:q} >> {log:q} 2>&1"


rule sample:
    input:
        f"{RESULTS}/gan/generator.pt",
    output:
        directory(f"{RESULTS}/samples"),
    log:
        f"{RESULTS}/logs/sample.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample.tsv"
    conda:
        "../envs/torch.yaml"
    params:
        settings=as_json(config["sample"]),
        seed=config["seed"],
    shell:
        "speciesgan sample --generator {input:q} --out-dir {output:q} --seed {params.seed:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
