"""Parameters cells and params files: parsing, schema, clear errors."""

from pathlib import Path

import nbformat
import pytest

from geolib import params as P


def write_notebook(folder: Path, name: str, params_src: str, body: str = "x = 1") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell(params_src), nbformat.v4.new_code_cell(body)]
    nb.cells[1].metadata["tags"] = ["parameters"]
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture
def two_notebooks(tmp_path):
    a = write_notebook(tmp_path, "00_a.ipynb", 'profile: str = "demo"  # the profile\nn_images: int = 10  # images\nlr: float = 0.1  # learning rate\n')
    b = write_notebook(tmp_path, "01_b.ipynb", 'profile: str = "demo"  # the profile\nn_images: int = 10  # images\nnames: list[str] = ["a"]  # names\nmaybe: str | None = None  # optional\n')
    return [a, b]


def test_parse_parameters_cell_reads_types_defaults_and_help():
    ps = P.parse_parameters_cell('profile: str = "demo"  # which profile\nseed: int = 0\nthreshold: float = 0.4  # keep >= this\n', "nb")
    assert [(p.name, p.annotation, p.default, p.help) for p in ps] == [
        ("profile", "str", "demo", "which profile"), ("seed", "int", 0, ""), ("threshold", "float", 0.4, "keep >= this")]


@pytest.mark.parametrize("src", ["x = 1", "n: int = 2 * 3", "import os", "n: int"])
def test_parameters_cell_rejects_derived_or_untyped_lines(src):
    with pytest.raises(P.ParamsError):
        P.parse_parameters_cell(src, "nb")


def test_hash_in_string_default_is_not_help():
    (p,) = P.parse_parameters_cell('color: str = "#ff0000"  # a colour\n', "nb")
    assert p.default == "#ff0000" and p.help == "a colour"


def test_valid_overrides_pass_and_keep_only_given_keys(two_notebooks):
    assert P.validate_params({"n_images": 5, "lr": 1, "maybe": None}, "f", two_notebooks) == {"n_images": 5, "lr": 1.0, "maybe": None}


def test_unknown_key_is_an_error_naming_it_and_the_allowed_keys(two_notebooks):
    with pytest.raises(P.ParamsError) as err:
        P.validate_params({"n_imags": 5}, "params/x.yaml", two_notebooks)
    msg = str(err.value)
    assert "params/x.yaml" in msg and "'n_imags'" in msg and "did you mean 'n_images'" in msg
    assert "Allowed keys:" in msg and "lr" in msg and "names" in msg


@pytest.mark.parametrize("values", [{"n_images": "5"}, {"n_images": 2.5}, {"lr": "fast"}, {"names": "a"}, {"names": [1]}])
def test_wrong_type_is_an_error(two_notebooks, values):
    with pytest.raises(P.ParamsError) as err:
        P.validate_params(values, "f", two_notebooks)
    assert repr(next(iter(values))) in str(err.value)


def test_conflicting_types_across_notebooks(tmp_path):
    a = write_notebook(tmp_path, "00_a.ipynb", "n: int = 1\n")
    b = write_notebook(tmp_path, "01_b.ipynb", "n: float = 1.0\n")
    with pytest.raises(P.ParamsError, match="different types"):
        P.all_parameters([a, b])


def test_load_params_file(tmp_path, two_notebooks):
    f = tmp_path / "ci.yaml"
    f.write_text("n_images: 3\n")
    assert P.load_params("ci", f, two_notebooks) == {"n_images": 3, "profile": "ci"}
    f.write_text("profile: demo\n")
    with pytest.raises(P.ParamsError, match="says profile"):
        P.load_params("ci", f, two_notebooks)
    f.write_text("n_images: [\n")
    with pytest.raises(P.ParamsError, match="not valid YAML"):
        P.load_params("ci", f, two_notebooks)
    f.write_text("- a\n- b\n")
    with pytest.raises(P.ParamsError, match="mapping"):
        P.load_params("ci", f, two_notebooks)
    with pytest.raises(P.ParamsError, match="no params file"):
        P.load_params("nope", tmp_path / "nope.yaml", two_notebooks)


def test_parameters_for_a_notebook_is_its_subset(two_notebooks):
    values = {"profile": "ci", "n_images": 3, "lr": 0.5, "names": ["z"]}
    assert P.parameters_for(two_notebooks[0], values) == {"profile": "ci", "n_images": 3, "lr": 0.5}
    assert P.parameters_for(two_notebooks[1], values) == {"profile": "ci", "n_images": 3, "names": ["z"]}


def test_missing_or_duplicate_parameters_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x: int = 1")]
    path = tmp_path / "00_x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(P.ParamsError, match="exactly one cell tagged"):
        P.notebook_parameters(path)
