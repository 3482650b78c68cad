# Data stages: demo archives -> download -> extract -> index -> crop shards -> manifest.
# As in every rule file, each value in a shell command is quoted (`:q`): paths
# and categories come from the config and must reach `speciesgan` as written,
# never be split or run by the shell.
#
# Local rules run where Snakemake runs, not as SLURM jobs: downloads need the
# internet, which many clusters' compute nodes lack, and the demo archives, index
# and manifest take seconds, less than a queue wait.


localrules:
    demo_stanford_dogs,
    demo_cub,
    demo_iwildcam,
    download,
    download_detections,
    index,
    manifest,


rule demo_stanford_dogs:
    output:
        multiext(
            "data/demo/{key}/{dataset}/", "images.tar", "annotation.tar", "lists.tar"
        ),
    log:
        "data/demo/{key}/logs/{dataset}.log",
    benchmark:
        "data/demo/{key}/benchmarks/{dataset}.tsv"
    params:
        **code("demo-data"),
        settings=as_json(config.get("demo", {})),
        seed=config["seed"],
    shell:
        "speciesgan demo-data --layout stanford_dogs --out-dir data/demo/{wildcards.key:q}/{wildcards.dataset:q}"
        " --seed {params.seed:q} --settings {params.settings:q} > {log:q} 2>&1"


rule demo_cub:
    output:
        "data/demo/{key}/{dataset}/CUB_200_2011.tgz",
    log:
        "data/demo/{key}/logs/{dataset}.log",
    benchmark:
        "data/demo/{key}/benchmarks/{dataset}.tsv"
    params:
        **code("demo-data"),
        settings=as_json(config.get("demo", {})),
        seed=config["seed"],
    shell:
        "speciesgan demo-data --layout cub --out-dir data/demo/{wildcards.key:q}/{wildcards.dataset:q}"
        " --seed {params.seed:q} --settings {params.settings:q} > {log:q} 2>&1"


rule demo_iwildcam:
    output:
        multiext(
            "data/demo/{key}/{dataset}/",
            "iwildcam_v2.0.tar.gz",
            "megadetector_results.json",
        ),
    log:
        "data/demo/{key}/logs/{dataset}.log",
    benchmark:
        "data/demo/{key}/benchmarks/{dataset}.tsv"
    params:
        **code("demo-data"),
        settings=as_json(config.get("demo", {})),
        seed=config["seed"],
    shell:
        "speciesgan demo-data --layout iwildcam --out-dir data/demo/{wildcards.key:q}/{wildcards.dataset:q}"
        " --seed {params.seed:q} --settings {params.settings:q} > {log:q} 2>&1"


rule download:
    input:
        lambda w: local_input(dataset_files(dataset_of(w.dataset))[w.archive]["url"]),
    output:
        f"{DOWNLOADS}/{{dataset}}/archives/{{archive}}",
    log:
        f"{DOWNLOADS}/{{dataset}}/logs/download-{{archive}}.log",
    benchmark:
        f"{DOWNLOADS}/{{dataset}}/benchmarks/download-{{archive}}.tsv"
    params:
        **code("download"),
        url=lambda w: dataset_files(dataset_of(w.dataset))[w.archive]["url"],
        # the option and its value as two words, or no word when nothing is pinned
        sha256=lambda w: (
            ["--sha256", dataset_files(dataset_of(w.dataset))[w.archive]["sha256"]]
            if dataset_files(dataset_of(w.dataset))[w.archive]["sha256"]
            else []
        ),
    shell:
        "speciesgan download --url {params.url:q} --out {output:q} {params.sha256:q} > {log:q} 2>&1"


rule download_detections:
    input:
        lambda w: local_input(config["datasets"][dataset_of(w.dataset)]["detections"]),
    output:
        f"{DOWNLOADS}/{{dataset}}/detections.json",
    log:
        f"{DOWNLOADS}/{{dataset}}/logs/download-detections.log",
    benchmark:
        f"{DOWNLOADS}/{{dataset}}/benchmarks/download-detections.tsv"
    params:
        **code("download"),
        url=lambda w: config["datasets"][dataset_of(w.dataset)]["detections"],
        sha256=lambda w: (
            [
                "--sha256",
                config["datasets"][dataset_of(w.dataset)]["detections_sha256"],
            ]
            if config["datasets"][dataset_of(w.dataset)].get("detections_sha256")
            else []
        ),
    shell:
        "speciesgan download --url {params.url:q} --out {output:q} {params.sha256:q} > {log:q} 2>&1"


rule extract:
    input:
        archives,
    output:
        directory(f"{DOWNLOADS}/{{dataset}}/extracted"),
    log:
        f"{DOWNLOADS}/{{dataset}}/logs/extract.log",
    benchmark:
        f"{DOWNLOADS}/{{dataset}}/benchmarks/extract.tsv"
    resources:
        mem_mb=memory_per_attempt(2000),
        runtime=120,
    params:
        **code("extract"),
    shell:
        "speciesgan extract {input:q} --out-dir {output:q} > {log:q} 2>&1"


rule index:
    input:
        [source_root(name) for name in USED],
        detection_inputs(),
    output:
        records=f"{RESULTS}/data/records.parquet",
        rejects=f"{RESULTS}/data/index_rejects.parquet",
    log:
        f"{RESULTS}/logs/index.log",
    benchmark:
        f"{RESULTS}/benchmarks/index.tsv"
    params:
        **code("index"),
        sources=as_json([source_entry(name) for name in USED]),
        settings=as_json(
            pick(
                "preprocess",
                "test_fraction",
                "shards",
                "box_mode",
                "min_images_per_species",
                "small_species",
            )
        ),
        seed=config["seed"],
    shell:
        "speciesgan index --sources {params.sources:q} --out {output.records:q}"
        " --out-rejects {output.rejects:q} --seed {params.seed:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule crop_shard:
    input:
        records=f"{RESULTS}/data/records.parquet",
        # the photos the records name are read from the sources' folders
        sources=[source_root(name) for name in USED],
    output:
        images=f"{RESULTS}/data/shards/shard-{{shard}}.npy",
        rows=f"{RESULTS}/data/shards/shard-{{shard}}.parquet",
        rejects=f"{RESULTS}/data/shards/rejects-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/crop_shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crop_shard-{{shard}}.tsv"
    threads: threads_for("crop_shard")
    resources:
        mem_mb=memory_per_attempt(4000),
        runtime=120,
    params:
        **code("crop-shard"),
        shard=lambda w: int(w.shard),
        settings=as_json(
            pick(
                "preprocess",
                "image_size",
                "pad_mode",
                "resample",
                "min_box_size",
                "greyscale",
            )
        ),
    shell:
        "speciesgan crop-shard --records {input.records:q} --shard {params.shard:q}"
        " --out-images {output.images:q} --out-rows {output.rows:q} --threads {threads:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule manifest:
    input:
        rows=expand(f"{RESULTS}/data/shards/shard-{{shard}}.parquet", shard=SHARDS),
        shard_rejects=expand(
            f"{RESULTS}/data/shards/rejects-{{shard}}.parquet", shard=SHARDS
        ),
        index_rejects=f"{RESULTS}/data/index_rejects.parquet",
        # read to check each shard's images are the ones its rows were written with
        images=shard_arrays(),
    output:
        manifest=f"{RESULTS}/data/manifest.parquet",
        rejects=f"{RESULTS}/data/rejects.parquet",
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    params:
        **code("manifest"),
        settings=as_json(pick("preprocess", "min_images_per_species", "small_species")),
    shell:
        "speciesgan manifest --rows {input.rows:q} --index-rejects {input.index_rejects:q}"
        " --out {output.manifest:q} --out-rejects {output.rejects:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"
