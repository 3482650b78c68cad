# Metrics and the report.  Making the report takes seconds and little memory: it runs
# where Snakemake runs (login node) instead of waiting in the queue.


localrules:
    report,


rule real_features:
    input:
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
    output:
        # the real side of every figure depends on the data only: computed beside GAN training
        directory(f"{RESULTS}/eval/real_features"),
    log:
        f"{RESULTS}/logs/real_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/real_features.tsv"
    threads: threads_for("real_features")
    resources:
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(16000),
        runtime=240,
    params:
        **code("real-features"),
        settings=as_json(config["metrics"]),
    shell:
        "speciesgan real-features --manifest {input.manifest:q} --out-dir {output:q}"
        " --threads {threads:q} --settings {params.settings:q} > {log:q} 2>&1"


rule evaluate:
    input:
        generator=f"{RESULTS}/gan/generator.pt",
        snapshots=f"{RESULTS}/gan/snapshots.pt",
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=f"{RESULTS}/classifier/eval/model.pt",
        # the independent judge and its own test accuracy (speciesgan.classifier.judge)
        judge=f"{RESULTS}/classifier/judge/model.pt",
        judge_metrics=f"{RESULTS}/classifier/judge/metrics.json",
        real_features=f"{RESULTS}/eval/real_features",
    output:
        metrics=report(
            f"{RESULTS}/eval/metrics.json",
            caption="../report/metrics.rst",
            category="Generation metrics",
        ),
        # the headline figures, numbers only: the DVC metric (speciesgan.metrics.headline)
        headline=f"{RESULTS}/eval/headline.json",
        pairs=report(
            f"{RESULTS}/eval/closest_pairs.png",
            caption="../report/closest_pairs.rst",
            category="Generation metrics",
        ),
    log:
        f"{RESULTS}/logs/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate.tsv"
    threads: threads_for("evaluate")
    resources:
        # Inception, the classifiers and DINOv2 run on the GPU (~51k images at full
        # scale), and CAS trains a classifier on generated images
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(16000),
        runtime=720,
    params:
        **code("evaluate"),
        settings=as_json(config["metrics"]),
        seed=config["seed"],
        judge_min_accuracy=config["judge"]["min_accuracy"],
    shell:
        "speciesgan evaluate --generator {input.generator:q} --manifest {input.manifest:q}"
        " --classifier {input.classifier:q} --snapshots {input.snapshots:q}"
        " --judge {input.judge:q} --judge-min-accuracy {params.judge_min_accuracy:q}"
        " --out {output.metrics:q} --out-pairs {output.pairs:q} --seed {params.seed:q}"
        " --real-features {input.real_features:q}"
        " --threads {threads:q} --settings {params.settings:q} > {log:q} 2>&1"


rule cas:
    input:
        generator=f"{RESULTS}/gan/generator.pt",
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        classifier=f"{RESULTS}/classifier/eval/model.pt",
    output:
        metrics=f"{RESULTS}/eval/cas/metrics.json",
        # CAS top-1 and its floor: a DVC metric (speciesgan.metrics.headline)
        headline=f"{RESULTS}/eval/cas/headline.json",
    log:
        f"{RESULTS}/logs/cas.log",
    benchmark:
        f"{RESULTS}/benchmarks/cas.tsv"
    threads: threads_for("cas")
    resources:
        # a classifier training on generated images (the eval classifier's recipe)
        gpu=1,
        nodes=1,
        mem_mb=memory_per_attempt(16000),
        runtime=720,
    params:
        **code("cas"),
        classifier_settings=as_json(config["classifier"]),
        seed=config["seed"],
    shell:
        "speciesgan cas --generator {input.generator:q} --manifest {input.manifest:q}"
        " --classifier {input.classifier:q} --out {output.metrics:q} --seed {params.seed:q}"
        " --threads {threads:q} --classifier-settings {params.classifier_settings:q}"
        " > {log:q} 2>&1"


rule report:
    input:
        rejects=f"{RESULTS}/data/rejects.parquet",
        classifiers=expand(
            f"{RESULTS}/classifier/{{role}}/metrics.json", role=classifier_roles()
        ),
        training_log=f"{RESULTS}/gan/training_log.csv",
        selection=f"{RESULTS}/gan/selection.json",
        # the report shows real crops beside the samples and draws an interpolation strip
        manifest=f"{RESULTS}/data/manifest.parquet",
        shards=shard_arrays(),
        generator=f"{RESULTS}/gan/generator.pt",
        samples=f"{RESULTS}/samples",
        metrics=f"{RESULTS}/eval/metrics.json",
        pairs=f"{RESULTS}/eval/closest_pairs.png",
        cas=[f"{RESULTS}/eval/cas/metrics.json"] if config["metrics"]["cas"] else [],
        ablation=lambda w: (
            [f"{RESULTS}/ablation/table.json"] if ablation_variants() else []
        ),
    output:
        html=report(
            f"{RESULTS}/report.html",
            caption="../report/report_html.rst",
            category="Run report",
        ),
        json=f"{RESULTS}/metrics.json",
        curves=report(
            f"{RESULTS}/gan/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="GAN training",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    params:
        **code("report"),
        results=lambda w, output: os.path.dirname(output.html),
    shell:
        "speciesgan report --results-dir {params.results:q} --out-html {output.html:q}"
        " --out-json {output.json:q} --out-loss-curves {output.curves:q} > {log:q} 2>&1"
