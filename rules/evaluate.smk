# Metrics and the report.


rule evaluate:
    input:
        generator=f"{RESULTS}/gan/generator.pt",
        snapshots=f"{RESULTS}/gan/snapshots.pt",
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=f"{RESULTS}/classifier/eval/model.pt",
    output:
        metrics=f"{RESULTS}/eval/metrics.json",
        pairs=f"{RESULTS}/eval/closest_pairs.png",
    log:
        f"{RESULTS}/logs/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate.tsv"
    conda:
        "../envs/torch.yaml"
    threads: THREADS
    params:
        settings=as_json(config["metrics"]),
        # CAS trains a classifier on generated images with the eval classifier's recipe
        classifier_settings=as_json(config["classifier"]),
        seed=config["seed"],
        threads=THREADS,
    shell:
        "speciesgan evaluate --generator {input.generator:q} --manifest {input.manifest:q}"
        " --classifier {input.classifier:q} --snapshots {input.snapshots:q}"
        " --out {output.metrics:q} --out-pairs {output.pairs:q} --seed {params.seed:q}"
        " --threads {params.threads:q} --settings {params.settings:q}"
        " --classifier-settings {params.classifier_settings:q} > {log:q} 2>&1"


rule report:
    input:
        rejects=f"{RESULTS}/data/rejects.parquet",
        classifiers=expand(
            f"{RESULTS}/classifier/{{role}}/metrics.json", role=classifier_roles()
        ),
        training_log=f"{RESULTS}/gan/training_log.csv",
        samples=f"{RESULTS}/samples",
        metrics=f"{RESULTS}/eval/metrics.json",
        pairs=f"{RESULTS}/eval/closest_pairs.png",
        ablation=lambda w: (
            [f"{RESULTS}/ablation/table.json"] if ablation_variants() else []
        ),
    output:
        html=f"{RESULTS}/report.html",
        json=f"{RESULTS}/metrics.json",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    params:
        results=lambda w, output: os.path.dirname(output.html),
    shell:
        "speciesgan report --results-dir {params.results:q} --out-html {output.html:q}"
        " --out-json {output.json:q} > {log:q} 2>&1"
