"""The WebShopLite catalogue and tasks, generated from a seed; the scoring function of WebShop.

A catalogue is a list of products (category, attributes, options such as colour and size, price);
a task asks for a product of one category with some of its attributes, one value per option and a
price limit, in WebShop's instruction style. ``webshop_reward`` scores a purchase against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "t-shirt": {
        "attributes": ("cotton", "slim fit", "short sleeve", "machine wash", "organic", "v-neck"),
        "color": ("black", "white", "navy", "red", "heather grey"),
        "size": ("small", "medium", "large", "x-large"),
    },
    "running shoes": {
        "attributes": ("lightweight", "breathable", "non-slip", "memory foam", "waterproof", "wide"),
        "color": ("black", "blue", "white", "pink", "grey"),
        "size": ("7", "8", "9", "10", "11"),
    },
    "coffee mug": {
        "attributes": ("ceramic", "dishwasher safe", "microwave safe", "insulated", "lid included"),
        "color": ("white", "black", "green", "blue"),
        "size": ("12 oz", "16 oz", "20 oz"),
    },
    "headphones": {
        "attributes": ("wireless", "noise cancelling", "over-ear", "foldable", "long battery life"),
        "color": ("black", "silver", "rose gold", "blue"),
    },
    "backpack": {
        "attributes": ("water resistant", "laptop sleeve", "lightweight", "anti-theft", "usb charging port"),
        "color": ("black", "grey", "olive", "navy"),
        "size": ("20 liter", "30 liter", "40 liter"),
    },
    "face cream": {
        "attributes": ("fragrance free", "hyaluronic acid", "vegan", "spf 30", "sensitive skin"),
        "size": ("1.7 oz", "3.4 oz"),
    },
}
BRANDS = ("Acme", "Northwind", "Lumen", "Pebble", "Solace", "Vireo", "Quill", "Tundra", "Maple", "Orbit")


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    category: str
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: float
    rating: float


@dataclass(frozen=True)
class Task:
    """What the shopper asks for. ``target`` is one product that satisfies it fully."""

    instruction: str
    category: str
    attributes: tuple[str, ...]
    options: dict[str, str]
    price_limit: float
    target: str


@dataclass
class Purchase:
    product: Product
    options: dict[str, str] = field(default_factory=dict)


def make_catalogue(rng: np.random.Generator, n_products: int = 60) -> list[Product]:
    products = []
    names = list(CATEGORIES)
    for i in range(n_products):
        category = names[i % len(names)]
        spec = CATEGORIES[category]
        k = int(rng.integers(2, 4))
        attrs = tuple(sorted(rng.choice(spec["attributes"], size=k, replace=False).tolist()))
        options = {}
        for opt in ("color", "size"):
            if opt in spec:
                m = int(rng.integers(2, len(spec[opt]) + 1))
                options[opt] = tuple(rng.choice(spec[opt], size=m, replace=False).tolist())
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        title = f"{brand} {' '.join(a.title() for a in attrs[:2])} {category.title()} {100 + i}"
        price = round(float(rng.uniform(8, 120)), 2)
        products.append(Product(f"P{i:03d}", title, category, attrs, options, price, round(float(rng.uniform(2.5, 5)), 1)))
    return products


def make_task(rng: np.random.Generator, catalogue: list[Product]) -> Task:
    target = catalogue[int(rng.integers(len(catalogue)))]
    k = min(len(target.attributes), 2)
    attrs = tuple(rng.choice(target.attributes, size=k, replace=False).tolist())
    options = {opt: values[int(rng.integers(len(values)))] for opt, values in target.options.items()}
    limit = float(np.ceil(target.price / 10) * 10 + 10)
    wants = " and ".join(attrs)
    opts = ", ".join(f"{opt} {value}" for opt, value in options.items())
    text = f"i am looking for a {wants} {target.category}" + (f" with {opts}" if opts else "")
    text += f", and price lower than {limit:.0f} dollars"
    return Task(text, target.category, attrs, options, limit, target.id)


def webshop_reward(task: Task, purchase: Purchase) -> float:
    """WebShop's score of a purchase (Yao et al. 2022, eq. 1):
    r = r_type * (|U_att ∩ Y_att| + |U_opt ∩ Y_opt| + 1[y_price <= u_price]) / (|U_att| + |U_opt| + 1),
    with r_type = 1 for the asked category and 0 otherwise (WebShop grades product types by text
    similarity; the generated catalogue has exact categories)."""
    product = purchase.product
    r_type = 1.0 if product.category == task.category else 0.0
    r_att = sum(a in product.attributes for a in task.attributes)
    r_opt = sum(purchase.options.get(opt) == value for opt, value in task.options.items())
    r_price = float(product.price <= task.price_limit)
    return r_type * (r_att + r_opt + r_price) / (len(task.attributes) + len(task.options) + 1)


def search(catalogue: list[Product], query: str) -> list[Product]:
    """Products ranked by how many query words their title, category and attributes contain."""
    words = [w for w in query.lower().replace(",", " ").split() if len(w) > 1]
    scored = []
    for p in catalogue:
        hay = f"{p.title} {p.category} {' '.join(p.attributes)}".lower()
        score = sum(w in hay for w in words)
        if score:
            scored.append((-score, p.id, p))
    return [p for _, _, p in sorted(scored)]
