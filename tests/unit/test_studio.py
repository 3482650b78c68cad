"""``speciesgan studio``'s API: every bad input answered clearly, concurrent clients, start-up.

The app is the real one over a real (untrained) generator; most tests call it
through Starlette's TestClient, the concurrency test and the command-line test
through a live uvicorn server on a free port.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from speciesgan.cli import build_parser, main
from speciesgan.studio.server import LiveServer
from speciesgan.studio.service import MAX_PICTURES, Studio, resolve_source
from tests.helpers.studio_fixtures import SIZE, SPECIES, make_run

REASON = "the studio extra is not installed: pip install -e '.[studio,dev]'"
httpx = pytest.importorskip("httpx", reason=REASON)
pytest.importorskip("uvicorn", reason=REASON)
TestClient = pytest.importorskip("starlette.testclient", reason=REASON).TestClient
create_app = pytest.importorskip("speciesgan.studio.app", reason=REASON).create_app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(studio: Studio):
    with TestClient(create_app(studio)) as test_client:
        yield test_client


def decoded(answer: dict) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(p["png"]))) for p in answer["pictures"]]


# ---------------------------------------------------------------- the happy path


def test_page_and_info(client: TestClient, studio: Studio) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "speciesgan studio" in page.text
    assert client.get("/app.js").status_code == 200
    info = client.get("/api/info").json()
    assert info["species_count"] == len(SPECIES) and info["image_size"] == SIZE
    assert info["generator_sha256"] == studio.sha256 and info["max_pictures"] == MAX_PICTURES
    panel = info["metrics"]
    assert panel["available"]
    names = [row["name"] for row in panel["headline"]]
    assert names[0].startswith("generated accuracy") and "FD-Lite0" in names
    accuracy, fd, recall, coverage = panel["headline"]
    assert (
        accuracy["floor"] == pytest.approx(1 / len(SPECIES)) and accuracy["floor_note"] == "chance"
    )
    assert recall["value"] == 0.4 and recall["floor_note"] == "floor not computed"
    assert coverage["value"] == 0.5 and fd["value"] == 12.5
    assert panel["worst"][0] == {"species": "Snow leopard", "accuracy": pytest.approx(0.4)}


@pytest.mark.parametrize(
    ("query", "first"),
    [("bord", "Border collie"), ("BORDER T", "Border terrier"), ("plover", "Ringed Plover"),
     ("bunting", "Painted Bunting"), ("snow leapord", "Snow leopard"), ("bordr coli", "Border collie"),
     ("fox", "Red fox")],
)  # fmt: skip
def test_search_matches_as_you_type(client: TestClient, query: str, first: str) -> None:
    matches = client.get("/api/species", params={"q": query}).json()["matches"]
    assert matches[0]["name"] == first
    expected = {"Border collie": "dog", "Border terrier": "dog", "Ringed Plover": "bird",
                "Painted Bunting": "bird", "Snow leopard": "mammal", "Red fox": "mammal"}  # fmt: skip
    assert matches[0]["category"] == expected[first]


def test_search_without_a_match_and_empty(client: TestClient) -> None:
    assert client.get("/api/species", params={"q": "zzzzqq"}).json()["matches"] == []
    everything = client.get("/api/species").json()["matches"]
    assert sorted(m["name"] for m in everything) == sorted(SPECIES)


def test_grid_of_16_pngs_seeded(client: TestClient) -> None:
    answer = client.post("/api/pictures", json={"species": "border collie", "seed": 5}).json()
    assert answer["n"] == 16 and answer["messages"] == []
    images = decoded(answer)
    assert all(image.size == (SIZE, SIZE) and image.format == "PNG" for image in images)
    records = [p["record"] for p in answer["pictures"]]
    assert [r["index"] for r in records] == list(range(16))
    assert {r["seed"] for r in records} == {5} and records[0]["species"][0]["name"] == SPECIES[0]
    again = client.post("/api/pictures", json={"species": 0, "seed": 5}).json()
    assert [p["png"] for p in again["pictures"]] == [p["png"] for p in answer["pictures"]]
    other = client.post("/api/pictures", json={"species": 0, "seed": 6}).json()
    assert other["pictures"][0]["png"] != answer["pictures"][0]["png"]


def test_more_like_this_starts_with_the_picture_itself(client: TestClient) -> None:
    grid = client.post("/api/pictures", json={"species": 2, "seed": 1, "n": 8}).json()
    around = {"seed": 1, "count": 8, "index": 3}
    near = client.post(
        "/api/pictures", json={"species": 2, "n": 6, "around": around, "step": 0.3}
    ).json()
    assert near["pictures"][0]["png"] == grid["pictures"][3]["png"]
    steps = [p["record"]["step"] for p in near["pictures"]]
    assert steps[0] is None and [s["seed"] for s in steps[1:]] == [1, 2, 3, 4, 5]
    assert len({p["png"] for p in near["pictures"]}) == 6


def test_mix_strip_changes_with_the_weights(client: TestClient) -> None:
    body = {"species": ["Red fox", "Painted Bunting"], "seed": 2, "n": 8}
    left = client.post("/api/pictures", json={**body, "mix": [1.0, 0.0]}).json()
    middle = client.post("/api/pictures", json={**body, "mix": [0.5, 0.5]}).json()
    fox = client.post("/api/pictures", json={"species": "Red fox", "seed": 2, "n": 8}).json()
    # weight 1 on the fox is the fox itself (same pixels; the record says it was a mix)
    assert [i.tobytes() for i in decoded(left)] == [i.tobytes() for i in decoded(fox)]
    assert [i.tobytes() for i in decoded(middle)] != [i.tobytes() for i in decoded(left)]
    three = client.post("/api/pictures", json={"species": [0, 2, 4], "seed": 2, "n": 2}).json()
    assert [s["weight"] for s in three["pictures"][0]["record"]["species"]] == [1 / 3] * 3


def test_zip_holds_the_grid_with_sidecars(client: TestClient) -> None:
    grid = client.post("/api/pictures", json={"species": 3, "seed": 4, "n": 4}).json()
    response = client.post("/api/zip", json={"records": [p["record"] for p in grid["pictures"]]})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        for picture in grid["pictures"]:
            assert archive.read(f"{picture['name']}.png") == base64.b64decode(picture["png"])
            assert json.loads(archive.read(f"{picture['name']}.json")) == picture["record"]


# ---------------------------------------------------------------- bad input


def refused(client: TestClient, status: int, body=None, content: bytes | None = None) -> dict:
    if content is not None:
        response = client.post("/api/pictures", content=content)
    else:
        response = client.post("/api/pictures", json=body)
    assert response.status_code == status, response.text
    return response.json()


def test_unknown_species_is_404_with_suggestions(client: TestClient) -> None:
    answer = refused(client, 404, {"species": "Border colly"})
    assert "unknown species 'Border colly'" in answer["error"]
    assert answer["suggestions"][0] == "Border collie"
    assert refused(client, 404, {"species": 99})["error"].startswith("no species number 99")
    assert refused(client, 404, {"species": ["Red fox", "Dodo"]})["suggestions"] == []


@pytest.mark.parametrize(("n", "drawn"), [(0, 1), (-5, 1), (65, 64), (10_000, 64)])
def test_n_out_of_range_is_capped_with_a_message(client: TestClient, n: int, drawn: int) -> None:
    answer = client.post("/api/pictures", json={"species": 1, "n": n}).json()
    assert answer["n"] == drawn and len(answer["pictures"]) == drawn
    assert answer["messages"] == [f"n={n} is out of range 1..64: drawing {drawn}"]


@pytest.mark.parametrize(
    "content",
    [b"{", b"not json", b"\xff\xfe", b"", b'{"species": "Red fox",}'],
)
def test_malformed_json_is_400(client: TestClient, content: bytes) -> None:
    assert refused(client, 400, content=content)["error"].startswith("malformed JSON")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"species": "../../etc/passwd"}, "looks like a file path"),
        ({"species": "/etc/passwd"}, "looks like a file path"),
        ({"species": "C:\\Windows\\win.ini"}, "looks like a file path"),
        ({"species": ["Red fox", "~/.ssh/id_rsa"]}, "looks like a file path"),
        ({"species": "Red fox", "generator": "/etc/passwd"}, "unknown field(s) ['generator']"),
        ({"species": "Red fox", "out": "/tmp/x.png"}, "unknown field(s) ['out']"),
        ({"species": "Red fox", "seed": "/etc/passwd"}, "seed must be a whole number"),
        ({"species": "Red fox", "n": "../16"}, "n must be a whole number"),
        ({"species": "Red fox", "around": {"seed": "/x", "count": 4, "index": 0}},
         "around.seed must be a whole number"),
        ({"species": "Red fox", "around": "/etc/passwd"}, "around must be an object"),
        ({"species": ["Red fox", "Painted Bunting"], "mix": "/etc/passwd"}, "mix: give one weight"),
    ],
)  # fmt: skip
def test_paths_in_any_field_are_refused(client: TestClient, body: dict, message: str) -> None:
    assert message in refused(client, 400, body)["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "the request must be a JSON object"),
        ({}, "species is missing"),
        ({"species": None}, "species is missing"),
        ({"species": 1.5}, "species must be a name or a number"),
        ({"species": True}, "species must be a name or a number"),
        ({"species": [0, 1, 2, 3]}, "give 1 to 3 species"),
        ({"species": [0, 0]}, "named twice"),
        ({"species": [0, 1], "mix": [0.7, 0.7]}, "sum to 1"),
        ({"species": [0, 1], "mix": [1.5, -0.5]}, "sum to 1"),
        ({"species": [0, 1], "mix": [0.5]}, "one weight per species"),
        ({"species": 0, "n": 2.5}, "n must be a whole number"),
        ({"species": 0, "n": True}, "n must be a whole number"),
        ({"species": 0, "seed": -1}, "seed must be between"),
        ({"species": 0, "seed": 2**70}, "seed must be between"),
        ({"species": 0, "step": 0.5}, "step needs around"),
        ({"species": 0, "around": {"seed": 0, "count": 4, "index": 4}}, "around.index"),
        ({"species": 0, "around": {"seed": 0, "count": 4, "index": 0}, "step": 0}, "step must be above 0"),
        ({"species": 0, "around": {"seed": 0, "count": 4, "index": 0}, "step": 1e9}, "at most"),
    ],
)  # fmt: skip
def test_bad_fields_are_400(client: TestClient, body, message: str) -> None:
    assert message in refused(client, 400, body)["error"]


def test_nan_is_refused(client: TestClient) -> None:
    body = b'{"species": [0, 1], "mix": [NaN, 1]}'
    assert "finite number" in refused(client, 400, content=body)["error"]


def test_bad_zip_requests_and_bad_routes(client: TestClient, studio: Studio) -> None:
    record = studio.pictures({"species": 0, "n": 1})["pictures"][0]["record"]
    cases = [
        ({"records": []}, "a list of 1 to 64"),
        ({"records": [record], "path": "/etc"}, '{"records": [...]}'),
        ({"records": [{**record, "generator_sha256": "0" * 64}]}, "another generator"),
        ({"records": [{**record, "index": 5}]}, "bad record: index must be between"),
        ({"records": ["/etc/passwd"]}, "bad record: not a speciesgan picture record"),
    ]
    for body, message in cases:
        response = client.post("/api/zip", json=body)
        assert response.status_code == 400 and message in response.json()["error"]
    assert client.post("/api/zip", content=b"[").status_code == 400
    assert client.get("/api/pictures").status_code == 405
    assert client.get("/../etc/passwd").status_code == 404
    assert client.get("/static/app.js").status_code == 404
    assert client.get("/api/species", params={"q": "x" * 500}).status_code == 400
    huge = b'{"species": "' + b"a" * 300_000 + b'"}'
    assert client.post("/api/pictures", content=huge).status_code == 413
    assert client.get("/api/info").status_code == 200  # still serving


# ---------------------------------------------------------------- start-up errors


class Payload:
    """A pickle that would create a file if it were ever unpickled with code allowed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _not_generators(folder: Path) -> dict[str, tuple[Path, str | tuple[str, ...]]]:
    folder.mkdir(parents=True, exist_ok=True)
    damaged = folder / "damaged.pt"
    good = make_run(folder / "run") / "gan" / "generator.pt"
    damaged.write_bytes(good.read_bytes()[:300])
    tensor = folder / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    state = folder / "state.pt"
    torch.save({"weights": torch.zeros(2)}, state)
    foreign = folder / "foreign.pt"
    torch.save({"model": "vae", "state_dict": {"w": torch.zeros(2)}}, foreign)
    evil = folder / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump(Payload(folder / "code-ran"), fh)
    text = folder / "notes.pt"
    text.write_text("hello")
    return {
        "missing": (folder / "nope.pt", "generator file not found"),
        "damaged": (damaged, "not a readable generator checkpoint"),
        # the loader's own check (newer) or the studio's catch-all (older loader)
        "a tensor": (tensor, ("not a speciesgan generator", "not a generator checkpoint")),
        "another checkpoint": (state, "holds no ema generator weights"),
        "another model": (foreign, "does not match the code"),
        "a pickle with code": (evil, "not a readable generator checkpoint"),
        "text": (text, "not a readable generator checkpoint"),
        "empty folder": (folder, "without gan/generator.pt"),
    }


def test_bad_generators_fail_at_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for what, (path, message) in _not_generators(tmp_path / "g").items():
        assert main(["studio", "--generator", str(path), "--port", "0"]) == 1, what
        err = capsys.readouterr().err
        messages = (message,) if isinstance(message, str) else message
        assert any(text in err for text in messages), (what, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (what, err)
    assert not (tmp_path / "g" / "code-ran").exists()  # weights_only: the pickle never ran


def test_bad_metrics_given_explicitly_fail_at_start(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "metrics.json").write_text("[1, 2")
    argv = ["studio", "--generator", str(run_dir), "--metrics", str(tmp_path / "metrics.json")]
    assert main(argv) == 1
    assert "not a readable metrics.json" in capsys.readouterr().err
    # beside the generator, an unreadable metrics.json only turns the panel off
    make_run(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").write_text("{")
    service = Studio(resolve_source(tmp_path / "run" / "gan" / "generator.pt"))
    try:
        assert not service.panel["available"] and "unreadable" in service.panel["note"]
        assert service.categories == [None] * len(SPECIES)
    finally:
        service.close()


def test_generator_file_in_a_run_finds_its_metrics(run_dir: Path, tmp_path: Path) -> None:
    source = resolve_source(run_dir / "gan" / "generator.pt")
    assert source.metrics == run_dir / "metrics.json"
    copy = tmp_path / "pulled.pt"  # e.g. a DVC-pulled file elsewhere: no metrics
    copy.write_bytes((run_dir / "gan" / "generator.pt").read_bytes())
    assert resolve_source(copy).metrics is None


def test_binds_to_localhost_unless_told() -> None:
    args = build_parser().parse_args(["studio", "--generator", "g.pt"])
    assert args.host == "127.0.0.1" and args.port == 8765


def test_command_line_prints_its_address_and_serves(run_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable,
        "-m",
        "speciesgan",
        "studio",
        "--generator",
        str(run_dir),
        "--port",
        "0",
    ]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("speciesgan studio: 6 species from "), line
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        info = httpx.get(url + "api/info", timeout=30).json()
        assert info["species_count"] == len(SPECIES)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # wrote nothing where it ran


# ---------------------------------------------------------------- concurrency


def test_eight_concurrent_clients_all_answer_correctly(studio: Studio) -> None:
    bodies = [{"species": i % len(SPECIES), "seed": 100 + i, "n": 16} for i in range(8)]
    bodies[7] = {"species": [0, 3], "mix": [0.25, 0.75], "seed": 3, "n": 16}
    expected = [[p["png"] for p in studio.pictures(body)["pictures"]] for body in bodies]
    studio._cache.clear()  # the server must draw them again, all at once
    answers: dict[int, list[str]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def client(position: int, url: str) -> None:
        try:
            with httpx.Client(base_url=url, timeout=120) as http:
                start.wait()
                for _ in range(2):
                    response = http.post("/api/pictures", json=bodies[position])
                    response.raise_for_status()
                    answers.setdefault(position, [])
                    answers[position] = [p["png"] for p in response.json()["pictures"]]
                    assert answers[position] == expected[position]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with LiveServer(studio) as server:
        threads = [threading.Thread(target=client, args=(i, server.url)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert errors == []
    assert sorted(answers) == list(range(8))
    assert all(answers[i] == expected[i] for i in range(8))
