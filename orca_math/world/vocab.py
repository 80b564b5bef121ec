"""The words a world problem is made of: people, things to count, things to buy, groups.

Programs store keys into these tables (a name, an item's singular), so a program stays a few
hundred bytes of JSON and rerenders the same text as long as the world version is unchanged.
Changing a table changes rendered text: bump ``WORLD_VERSION`` in ``program.py`` when you do.
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> (subject, object, possessive) pronouns
PEOPLE: dict[str, tuple[str, str, str]] = {
    **{n: ("she", "her", "her") for n in (
        "Mia", "Ava", "Emma", "Olivia", "Sofia", "Chloe", "Grace", "Lily", "Zoe", "Nora",
        "Hannah", "Layla", "Ruby", "Isla", "Maya", "Aisha", "Priya", "Mei", "Lucia", "Fatima",
        "Elena", "Amara", "Julia", "Rosa", "Naomi", "Tara", "Yuki", "Leah", "Ines", "Carmen",
    )},
    **{n: ("he", "him", "his") for n in (
        "Liam", "Noah", "Leo", "Ethan", "Lucas", "Mason", "Owen", "Jack", "Ben", "Sam",
        "Omar", "Ravi", "Diego", "Kenji", "Mateo", "Felix", "Hugo", "Kofi", "Arjun", "Tom",
        "Ivan", "Marco", "Jamal", "Pedro", "Chen", "Oscar", "Amir", "Theo", "Luis", "Tariq",
    )},
}
NAMES: tuple[str, ...] = tuple(PEOPLE)


@dataclass(frozen=True)
class Item:
    """Something a person can have a count of, gather at a daily rate, and sell."""

    one: str  # singular: "apple"
    many: str  # plural: "apples"
    gather: tuple[str, str]  # (3rd person singular, base) verb for a daily rate: ("picks", "pick")
    container: str  # plural noun of what they are packed in: "baskets"


ITEMS: dict[str, Item] = {i.one: i for i in (
    Item("apple", "apples", ("picks", "pick"), "baskets"),
    Item("orange", "oranges", ("picks", "pick"), "crates"),
    Item("strawberry", "strawberries", ("picks", "pick"), "baskets"),
    Item("tomato", "tomatoes", ("picks", "pick"), "crates"),
    Item("cookie", "cookies", ("bakes", "bake"), "boxes"),
    Item("cupcake", "cupcakes", ("bakes", "bake"), "trays"),
    Item("muffin", "muffins", ("bakes", "bake"), "boxes"),
    Item("pie", "pies", ("bakes", "bake"), "boxes"),
    Item("sticker", "stickers", ("collects", "collect"), "albums"),
    Item("seashell", "seashells", ("collects", "collect"), "jars"),
    Item("stamp", "stamps", ("collects", "collect"), "albums"),
    Item("egg", "eggs", ("collects", "collect"), "cartons"),
    Item("marble", "marbles", ("collects", "collect"), "bags"),
    Item("bracelet", "bracelets", ("makes", "make"), "boxes"),
    Item("candle", "candles", ("makes", "make"), "boxes"),
    Item("paper crane", "paper cranes", ("folds", "fold"), "boxes"),
    Item("scarf", "scarves", ("knits", "knit"), "bags"),
    Item("pencil", "pencils", ("buys", "buy"), "packs"),
    Item("crayon", "crayons", ("buys", "buy"), "packs"),
    Item("card", "cards", ("collects", "collect"), "packs"),
    Item("flower", "flowers", ("picks", "pick"), "vases"),
    Item("book", "books", ("reads", "read"), "boxes"),
    Item("toy car", "toy cars", ("builds", "build"), "boxes"),
    Item("birdhouse", "birdhouses", ("builds", "build"), "crates"),
)}

# Things bought once, with their article: "She spends $12 on a book."
PURCHASES: tuple[str, ...] = (
    "a book", "a hat", "lunch", "a movie ticket", "a toy", "a backpack", "a scarf",
    "a board game", "snacks", "a water bottle", "a puzzle", "a notebook", "a plant", "a kite",
)

# Plural groups a person shares with: (singular, plural).
GROUPS: tuple[tuple[str, str], ...] = (
    ("friend", "friends"), ("cousin", "cousins"), ("classmate", "classmates"),
    ("neighbor", "neighbors"), ("teammate", "teammates"), ("sibling", "siblings"),
)

# Who gives a person money.
GIVERS: tuple[str, ...] = ("grandma", "grandpa", "aunt", "uncle", "mom", "dad", "neighbor")

STORES: tuple[str, ...] = ("store", "shop", "bakery", "market", "bookstore")

# Bills a price is usually paid with; a larger amount is paid as "$N".
BILLS: tuple[int, ...] = (5, 10, 20, 50, 100)
