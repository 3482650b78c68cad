# Ablation: GAN variants trained and scored exactly like the main model (same
# data, seed, evaluation classifier and metric settings), one table in the report.
# Enabled by configs/ablation.yaml; see the `ablation` section of the schema.


localrules:
    ablation_table,


rule train_gan_variant:
    input:
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=lambda w: (
            [f"{RESULTS}/classifier/guide/model.pt"]
            if variant_gan(w.run).get("classifier_loss_weight", 0.1) > 0
            else []
        ),
    output:
        generator=f"{RESULTS}/ablation/runs/{{run}}/generator.pt",
        log=f"{RESULTS}/ablation/runs/{{run}}/training_log.csv",
        timing=f"{RESULTS}/ablation/runs/{{run}}/training_time.json",
    log:
        f"{RESULTS}/logs/ablation_train-{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation_train-{{run}}.tsv"
    retries: retries_outside_job(TRAIN_SEGMENTS - 1)
    threads: threads_for("train_gan_variant")
    resources:
        # as rules/gan.smk's train_gan, on one GPU
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(12000),
        runtime=1440,
        fatal_stop=refuse_retry_after_fatal(
            f"{RESULTS}/ablation/runs/{{run}}/checkpoints"
        ),
        slurm_extra=TRAINING_SLURM_EXTRA,
    params:
        **code("train-gan"),
        settings=lambda w: as_json(variant_gan(w.run)),
        classifier=lambda w, input: (
            ["--classifier", input.classifier] if input.classifier else []
        ),
        checkpoints=lambda w: f"{RESULTS}/ablation/runs/{w.run}/checkpoints",
        seed=config["seed"],
    shell:
        "speciesgan train-gan --manifest {input.manifest:q} {params.classifier:q}"
        " --out-generator {output.generator:q} --out-log {output.log:q}"
        " --out-timing {output.timing:q} --checkpoint-dir {params.checkpoints:q}"
        " --seed {params.seed:q}"
        " --threads {threads:q} --settings {params.settings:q} >> {log:q} 2>&1"


rule evaluate_variant:
    input:
        generator=lambda w: run_generator(variant_run(w.variant)),
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=f"{RESULTS}/classifier/eval/model.pt",
        real_features=f"{RESULTS}/eval/real_features",
    output:
        metrics=f"{RESULTS}/ablation/{{variant}}/metrics.json",
        headline=f"{RESULTS}/ablation/{{variant}}/headline.json",
    log:
        f"{RESULTS}/logs/ablation_evaluate-{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation_evaluate-{{variant}}.tsv"
    threads: threads_for("evaluate_variant")
    resources:
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(16000),
        runtime=720,
    params:
        **code("evaluate"),
        settings=as_json(config["metrics"]),
        weights=lambda w: ablation_variants()[w.variant].get("weights", "ema"),
        seed=config["seed"],
    shell:
        "speciesgan evaluate --generator {input.generator:q} --manifest {input.manifest:q}"
        " --classifier {input.classifier:q} --out {output.metrics:q} --weights {params.weights:q}"
        " --real-features {input.real_features:q} --seed {params.seed:q} --threads {threads:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule ablation_table:
    input:
        lambda w: [variant_metrics(name) for name in ablation_variants()],
    output:
        report(
            f"{RESULTS}/ablation/table.json",
            caption="../report/ablation.rst",
            category="Ablation",
        ),
    log:
        f"{RESULTS}/logs/ablation_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation_table.tsv"
    params:
        **code("ablation-table"),
        # training seconds (all segments) come from the runs' training_time.json:
        # read, not depended on, so a rerun of the table never reruns a training job
        spec=lambda w: as_json(
            [
                {
                    "name": name,
                    "description": spec.get("description", ""),
                    "weights": spec.get("weights", "ema"),
                    "gan": variant_gan(name),
                    "metrics": variant_metrics(name),
                    "train_time": run_training_time(variant_run(name)),
                }
                for name, spec in ablation_variants().items()
            ]
        ),
    shell:
        "speciesgan ablation-table --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"
