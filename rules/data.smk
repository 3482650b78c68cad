# Data stages: demo archives -> download -> extract -> index -> crop shards -> manifest.


rule demo_stanford_dogs:
    output:
        multiext("data/demo/{dataset}/", "images.tar", "annotation.tar", "lists.tar"),
    log:
        "data/demo/logs/{dataset}.log",
    benchmark:
        "data/demo/benchmarks/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        settings=as_json(config.get("demo", {})),
        seed=config["seed"],
    shell:
        "speciesgan demo-data --layout stanford_dogs --out-dir data/demo/{wildcards.dataset}"
        " --seed {params.seed} --settings {params.settings:q} > {log} 2>&1"


rule demo_cub:
    output:
        "data/demo/{dataset}/CUB_200_2011.tgz",
    log:
        "data/demo/logs/{dataset}.log",
    benchmark:
        "data/demo/benchmarks/{dataset}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        settings=as_json(config.get("demo", {})),
        seed=config["seed"],
    shell:
        "speciesgan demo-data --layout cub --out-dir data/demo/{wildcards.dataset}"
        " --seed {params.seed} --settings {params.settings:q} > {log} 2>&1"


rule download:
    input:
        lambda w: local_input(dataset_files(w.dataset)[w.archive]["url"]),
    output:
        f"{DOWNLOADS}/{{dataset}}/archives/{{archive}}",
    log:
        f"{DOWNLOADS}/{{dataset}}/logs/download-{{archive}}.log",
    benchmark:
        f"{DOWNLOADS}/{{dataset}}/benchmarks/download-{{archive}}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        url=lambda w: dataset_files(w.dataset)[w.archive]["url"],
        sha256=lambda w: dataset_files(w.dataset)[w.archive]["sha256"] or "",
    shell:
        "speciesgan download --url {params.url:q} --out {output:q}"
        " $([ -n '{params.sha256}' ] && echo --sha256 {params.sha256}) > {log} 2>&1"


rule extract:
    input:
        archives,
    output:
        directory(f"{DOWNLOADS}/{{dataset}}/extracted"),
    log:
        f"{DOWNLOADS}/{{dataset}}/logs/extract.log",
    benchmark:
        f"{DOWNLOADS}/{{dataset}}/benchmarks/extract.tsv"
    conda:
        "../envs/data.yaml"
    shell:
        "speciesgan extract {input:q} --out-dir {output:q} > {log} 2>&1"


rule index:
    input:
        [source_root(name) for name in USED],
    output:
        records=f"{RESULTS}/data/records.parquet",
        rejects=f"{RESULTS}/data/index_rejects.parquet",
    log:
        f"{RESULTS}/logs/index.log",
    benchmark:
        f"{RESULTS}/benchmarks/index.tsv"
    conda:
        "../envs/data.yaml"
    params:
        sources=" ".join(
            f"--source {name}:{config['datasets'][name]['format']}:"
            f"{config['datasets'][name]['category']}:{source_root(name)}"
            for name in USED
        ),
        settings=as_json(
            pick(
                "preprocess",
                "test_fraction",
                "shards",
                "box_mode",
                "min_images_per_species",
            )
        ),
        seed=config["seed"],
    shell:
        "speciesgan index {params.sources} --out {output.records} --out-rejects {output.rejects}"
        " --seed {params.seed} --settings {params.settings:q} > {log} 2>&1"


rule crop_shard:
    input:
        f"{RESULTS}/data/records.parquet",
    output:
        images=f"{RESULTS}/data/shards/shard-{{shard}}.npy",
        rows=f"{RESULTS}/data/shards/shard-{{shard}}.parquet",
        rejects=f"{RESULTS}/data/shards/rejects-{{shard}}.parquet",
    log:
        f"{RESULTS}/logs/crop_shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crop_shard-{{shard}}.tsv"
    conda:
        "../envs/data.yaml"
    threads: THREADS
    params:
        settings=as_json(pick("preprocess", "image_size", "pad_mode", "resample")),
    shell:
        "speciesgan crop-shard --records {input:q} --shard $((10#{wildcards.shard}))"
        " --out-images {output.images:q} --out-rows {output.rows:q} --threads {threads}"
        " --settings {params.settings:q} > {log} 2>&1"


rule manifest:
    input:
        rows=expand(f"{RESULTS}/data/shards/shard-{{shard}}.parquet", shard=SHARDS),
        shard_rejects=expand(
            f"{RESULTS}/data/shards/rejects-{{shard}}.parquet", shard=SHARDS
        ),
        index_rejects=f"{RESULTS}/data/index_rejects.parquet",
    output:
        manifest=f"{RESULTS}/data/manifest.parquet",
        rejects=f"{RESULTS}/data/rejects.parquet",
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    conda:
        "../envs/data.yaml"
    params:
        settings=as_json(pick("preprocess", "min_images_per_species")),
    shell:
        "speciesgan manifest --rows {input.rows} --index-rejects {input.index_rejects}"
        " --out {output.manifest} --out-rejects {output.rejects}"
        " --settings {params.settings:q} > {log} 2>&1"
