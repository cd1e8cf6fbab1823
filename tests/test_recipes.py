"""Recipes: every shipped weight's record renders the command its card records, the command line builds
the same record from its flags, a card gives its recipe back, and the package's imports run one way."""

import ast
import json
import shlex
from pathlib import Path

import pytest

from vqvae_lessons import cli, pretrained, recipes
from vqvae_lessons.recipes import RECIPES, JudgeRecipe, PriorRecipe, VAERecipe, VQVAERecipe

SHIPPED = sorted(RECIPES)
PACKAGE = Path(recipes.__file__).resolve().parent


def train_args(words):
    return cli.build_parser().parse_args(["train", *words])


def test_every_shipped_weight_has_a_recipe_and_a_card():
    assert SHIPPED == pretrained.names() == sorted(p.stem for p in pretrained.WEIGHTS_DIR.glob("*.json"))
    for name in SHIPPED:
        assert RECIPES[name].kind == pretrained.card(name)["model"]
        assert RECIPES[name].description == pretrained.card(name)["description"]


@pytest.mark.parametrize("name", SHIPPED)
def test_the_recipe_renders_the_command_its_card_records(name):
    recipe, command = RECIPES[name], pretrained.card(name)["training"]["command"]
    assert command == recipes.reproduce_command(name)
    assert command == f"python -m vqvae_lessons reproduce {name}  # = train {shlex.join(recipe.arguments())}"
    assert recipe.command() == f"python -m vqvae_lessons train {shlex.join(recipe.arguments())}"
    # the words after "# = " are the command line's: they build the same recipe back
    assert cli.recipe_of(train_args(shlex.split(command.split("# = train ")[1]))) == recipe
    assert cli.recipe_of(cli.build_parser().parse_args(shlex.split(recipe.command())[3:])) == recipe


@pytest.mark.parametrize("name", SHIPPED)
def test_a_card_gives_its_recipe_back(name):
    card = pretrained.card(name)
    assert recipes.from_card(card) == RECIPES[name]
    assert recipes.from_card(card).settings() == RECIPES[name].settings()
    assert recipes.from_card(card).description == card["description"]


@pytest.mark.parametrize("kind", list(recipes.KINDS))
def test_the_command_line_s_defaults_are_the_recipe_s(kind):
    recipe_class = recipes.KINDS[kind]
    assert cli.recipe_of(train_args([kind])) == recipe_class()
    assert recipe_class().arguments()[0] == kind and recipe_class.kind == kind
    defaults = vars(train_args([kind]))
    for field in recipe_class.settings_fields():
        assert defaults[field.name] == field.default


@pytest.mark.parametrize("recipe", [
    VQVAERecipe(architecture="keras-example", quantizer="loss", num_embeddings=16, embedding_dim=4, beta=0.5,
                decay=0.9, kmeans_init=False, restart_dead_codes=False, epochs=2, batch_size=64,
                learning_rate=2.5e-4, seed=3, train_size=512),
    VAERecipe(latent_dim=8, learning_rate=0.002),
    PriorRecipe(vqvae="runs/my vq.weights.h5", architecture="gated", conditional=True, channels=32, num_layers=3,
                lr_schedule="cosine", dropout=0.3, augment=1.0, epochs=5, train_size=1000),
    PriorRecipe(augment=0.5, condition_on_moves=True),
    JudgeRecipe(epochs=1, batch_size=32, learning_rate=1e-2),
])
def test_any_recipe_renders_a_command_that_builds_it_again(recipe):
    assert cli.recipe_of(train_args(recipe.arguments())) == recipe
    assert cli.recipe_of(train_args(shlex.split(recipe.command("--out", "a b"))[4:-2])) == recipe


def test_command_spells_settings_the_way_the_shipped_cards_do():
    words = PriorRecipe(vqvae="v", learning_rate=3e-4, dropout=0.25).arguments()
    assert words == ["prior", "--vqvae", "v", "--architecture", "gated", "--dropout", "0.25", "--epochs", "30",
                     "--learning-rate", "3e-4", "--seed", "0"]
    assert VQVAERecipe(kmeans_init=False).arguments()[-5:] == ["--epochs", "30", "--no-kmeans-init", "--seed", "0"]
    assert recipes.VAERecipe().default_name() == "vae-z2"
    assert PriorRecipe(vqvae="runs/vq.weights.h5", conditional=True).default_name() == "pixelcnn-gated-conditional-vq"
    assert VQVAERecipe(architecture="keras-example").default_name() == "keras-example-k128-d16-ema"


def test_from_card_reads_what_the_card_says():
    card = json.loads((pretrained.WEIGHTS_DIR / "gated-vqvae.json").read_text())
    card["training"]["train_size"], card["config"]["num_layers"] = 1000, 4
    recipe = recipes.from_card(card)
    assert recipe.train_size == 1000 and recipe.num_layers == 4 and recipe.condition_on_moves is True
    with pytest.raises(ValueError, match="model is one of"):
        recipes.from_card({"model": "gan"})


def test_a_prior_needs_its_vq_vae():
    with pytest.raises(ValueError, match="codes of a VQ-VAE.*load_vqvae"):
        recipes.train(RECIPES["gated-vqvae"])


MODULES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
           for p in PACKAGE.rglob("*.py")}


def _imports(module):
    """The package's modules that ``module`` imports, at the top or inside a function (``from . import x``:
    the module ``x`` if there is one, else the package that defines the name)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in MODULES and name != module}


def test_the_package_s_imports_run_one_way():
    graph = {module: _imports(module) for module in MODULES}
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"an import circle: {' -> '.join([*path, module])}"
        state[module] = "open"
        for other in sorted(graph[module]):
            visit(other, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    assert "vqvae_lessons.pretrained" not in graph["vqvae_lessons.judge"]
    assert graph["vqvae_lessons.recipes"] <= {"vqvae_lessons.train", "vqvae_lessons.judge", "vqvae_lessons.priors"}
    assert graph["vqvae_lessons.__main__"] == {"vqvae_lessons.cli"}
