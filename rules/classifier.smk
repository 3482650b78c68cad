# Species classifiers.  Two are trained from the same crops with different seeds:
# "guide" feeds the GAN's classifier loss term, "eval" scores generated images.
# Scoring with the classifier the generator was trained against would reward
# adversarial features rather than recognisable species.


rule train_classifier:
    input:
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
    output:
        model=f"{RESULTS}/classifier/{{role}}/model.pt",
        metrics=f"{RESULTS}/classifier/{{role}}/metrics.json",
    log:
        f"{RESULTS}/logs/train_classifier-{{role}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_classifier-{{role}}.tsv"
    retries: 3
    conda:
        "../envs/torch.yaml"
    threads: THREADS
    params:
        settings=as_json(config["classifier"]),
        seed=lambda w: config["seed"] + (0 if w.role == "guide" else 1000),
        threads=THREADS,
    shell:
        "speciesgan train-classifier --manifest {input.manifest:q} --out-model {output.model:q}"
        " --out-metrics {output.metrics:q} --seed {params.seed:q} --threads {params.threads:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
