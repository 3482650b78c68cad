# Species classifiers.  Two are trained from the same crops with different seeds:
# "guide" feeds the GAN's classifier loss term, "eval" scores generated images.
# Scoring with the classifier the generator was trained against would reward
# adversarial features rather than recognisable species.  A third, "judge", is a
# small CNN trained from scratch (config `judge`): it shares nothing with the
# discriminator's ImageNet features (speciesgan.classifier.judge).


rule train_classifier:
    input:
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
    output:
        model=f"{RESULTS}/classifier/{{role}}/model.pt",
        metrics=report(
            f"{RESULTS}/classifier/{{role}}/metrics.json",
            caption="../report/classifier.rst",
            category="Species classifiers",
            labels={"classifier": "{role}"},
        ),
        headline=f"{RESULTS}/classifier/{{role}}/headline.json",
    log:
        f"{RESULTS}/logs/train_classifier-{{role}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_classifier-{{role}}.tsv"
    retries: retries_outside_job(3)
    threads: threads_for("train_classifier")
    resources:
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(12000),
        runtime=720,
        # checkpoint at the warning before the time limit (see rules/gan.smk)
        slurm_extra=TRAINING_SLURM_EXTRA,
    params:
        **code("train-classifier"),
        settings=lambda w: as_json(classifier_settings(w.role)),
        seed=lambda w: config["seed"] + CLASSIFIER_SEED_OFFSETS[w.role],
    shell:
        "speciesgan train-classifier --manifest {input.manifest:q} --out-model {output.model:q}"
        " --out-metrics {output.metrics:q} --seed {params.seed:q} --threads {threads:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
