"""Builds turngym/envs/games/data/twenty_questions.json (Twenty Questions):

    .venv/bin/python scripts/data/make_twenty_questions.py turngym/envs/games/data/twenty_questions.json

Hand-written facts: each object lists the questions answered yes; every other question is answered no."""
import json, sys, collections

ATTRS = {
 "alive": "Is it alive?", "animal": "Is it an animal?", "mammal": "Is it a mammal?", "bird": "Is it a bird?",
 "insect": "Is it an insect?", "herbivore": "Does it eat only plants?", "predator": "Does it hunt other animals?",
 "nocturnal": "Is it active mainly at night?", "pet": "Is it commonly kept as a pet?",
 "farm": "Is it commonly found on a farm?", "plant": "Is it a plant or part of a plant?", "fruit": "Is it a fruit?",
 "vegetable": "Is it a vegetable?", "edible": "Can people eat it?", "sweet": "Does it taste sweet?",
 "tree": "Does it grow on a tree?", "pit": "Does it have a single large seed or pit?",
 "man_made": "Is it made by people?", "electric": "Does it use electricity?", "screen": "Does it have a screen?",
 "keys": "Does it have keys or buttons you press?", "light": "Is its main purpose to give light?",
 "wheels": "Does it have wheels?", "engine": "Does it have an engine?",
 "transport": "Can it carry people from place to place?", "many_people": "Can it carry more than ten people at once?",
 "fly": "Can it fly?", "water": "Does it live in water or travel on water?", "legs": "Does it have legs?",
 "stripes": "Does it have stripes?", "metal": "Is it mostly made of metal?", "wood": "Is it mostly made of wood?",
 "fabric": "Is it mostly made of cloth?", "glass": "Is it mostly made of glass?", "paper": "Is it made of paper?",
 "wearable": "Can you wear it?", "head": "Is it worn on the head?", "feet": "Is it worn on the feet?",
 "pair": "Does it usually come in pairs?", "kitchen": "Is it usually found in a kitchen?",
 "outdoors": "Is it usually found outdoors?", "furniture": "Is it a piece of furniture?",
 "drawers": "Does it have drawers?", "sit": "Is it made for sitting on?", "music": "Is it used to make music?",
 "strings": "Does it have strings?", "sport": "Is it used to play a sport?",
 "tool": "Is it a tool for building, fixing or digging?", "sharp": "Does it have a sharp edge or point?",
 "handle": "Does it have a handle?", "container": "Can you put things inside it?",
 "hand": "Can you hold it in one hand?", "big": "Is it bigger than a person?", "long": "Is it long and thin?",
 "round": "Is it round?", "red": "Is it usually red?", "yellow": "Is it usually yellow?",
 "green": "Is it usually green?", "brown": "Is it usually brown?", "white": "Is it usually white?",
 "orange_color": "Is it usually orange?",
}

A = "alive animal "
M = "man_made "
OBJECTS = {
 # animals
 "cat": A + "mammal legs pet predator nocturnal",
 "dog": A + "mammal legs pet",
 "horse": A + "mammal legs farm herbivore transport big brown outdoors",
 "cow": A + "mammal legs farm herbivore big outdoors",
 "sheep": A + "mammal legs farm herbivore white outdoors",
 "pig": A + "mammal legs farm outdoors edible",
 "rabbit": A + "mammal legs pet herbivore",
 "mouse": A + "mammal legs hand nocturnal",
 "lion": A + "mammal legs predator big yellow outdoors",
 "tiger": A + "mammal legs predator big stripes orange_color outdoors",
 "bear": A + "mammal legs big brown outdoors",
 "elephant": A + "mammal legs herbivore big outdoors",
 "giraffe": A + "mammal legs herbivore big yellow outdoors",
 "zebra": A + "mammal legs herbivore big stripes outdoors",
 "monkey": A + "mammal legs brown outdoors tree",
 "bat": A + "mammal legs fly nocturnal hand outdoors",
 "whale": A + "mammal water big outdoors",
 "dolphin": A + "mammal water predator big outdoors",
 "shark": A + "water predator big outdoors",
 "goldfish": A + "water pet hand orange_color",
 "chicken": A + "bird legs farm edible outdoors",
 "duck": A + "bird legs farm fly water outdoors",
 "eagle": A + "bird legs fly predator brown outdoors",
 "owl": A + "bird legs fly predator nocturnal outdoors",
 "penguin": A + "bird legs water predator outdoors",
 "parrot": A + "bird legs fly pet green",
 "bee": A + "insect legs fly yellow stripes hand outdoors",
 "butterfly": A + "insect legs fly hand outdoors",
 "spider": A + "legs predator hand",
 "snake": A + "predator long green outdoors",
 "frog": A + "legs water predator green hand outdoors",
 "crocodile": A + "legs water predator big green outdoors",
 # fruit
 "apple": "plant fruit edible sweet tree round red hand",
 "banana": "plant fruit edible sweet tree yellow hand long",
 "orange": "plant fruit edible sweet tree round hand orange_color",
 "lemon": "plant fruit edible tree yellow hand",
 "strawberry": "plant fruit edible sweet red hand",
 "grape": "plant fruit edible sweet round hand green",
 "cherry": "plant fruit edible sweet tree pit round red hand",
 "peach": "plant fruit edible sweet tree pit round hand orange_color",
 "mango": "plant fruit edible sweet tree pit hand yellow",
 "watermelon": "plant fruit edible sweet round green",
 "pineapple": "plant fruit edible sweet yellow",
 "coconut": "plant fruit edible tree round brown hand",
 # vegetables and fungi
 "carrot": "plant vegetable edible long hand orange_color",
 "potato": "plant vegetable edible brown hand",
 "broccoli": "plant vegetable edible green hand",
 "cucumber": "plant vegetable edible green long hand",
 "onion": "plant vegetable edible round white hand",
 "tomato": "plant vegetable edible round red hand",
 "corn": "plant vegetable edible sweet yellow long hand",
 "pea": "plant vegetable edible sweet green round hand",
 "pumpkin": "plant vegetable edible round orange_color",
 "mushroom": "alive edible white hand outdoors",
 # nature
 "tree": "alive plant big wood green outdoors",
 "rose": "alive plant red sharp hand outdoors",
 "cactus": "alive plant green sharp outdoors",
 "sunflower": "alive plant yellow outdoors",
 "grass": "alive plant green outdoors",
 "rock": "outdoors hand",
 "mountain": "outdoors big",
 "cloud": "outdoors big white fly",
 # vehicles
 "car": M + "metal wheels engine transport outdoors",
 "bus": M + "metal wheels engine transport many_people big outdoors",
 "train": M + "metal wheels engine electric transport many_people big outdoors",
 "tractor": M + "metal wheels engine transport farm big outdoors",
 "bicycle": M + "metal wheels transport outdoors",
 "motorcycle": M + "metal wheels engine transport outdoors sit",
 "airplane": M + "metal wheels engine transport many_people fly big outdoors",
 "helicopter": M + "metal engine transport fly big outdoors",
 "rocket": M + "metal engine fly big outdoors long",
 "ship": M + "metal engine transport many_people water big outdoors",
 "sailboat": M + "transport water big outdoors fabric",
 "skateboard": M + "wheels wood sport transport outdoors",
 # clothes
 "shirt": M + "wearable fabric",
 "pants": M + "wearable fabric legs",
 "jacket": M + "wearable fabric outdoors",
 "hat": M + "wearable fabric head",
 "shoe": M + "wearable feet pair",
 "sock": M + "wearable fabric feet pair hand",
 "glove": M + "wearable fabric pair hand",
 "scarf": M + "wearable fabric long",
 "belt": M + "wearable long hand",
 "sunglasses": M + "wearable head glass hand",
 "helmet": M + "wearable head sport round",
 "ring": M + "wearable metal round hand yellow",
 "watch": M + "wearable metal round hand electric",
 # electronics
 "computer": M + "electric screen keys",
 "smartphone": M + "electric screen hand",
 "television": M + "electric screen",
 "headphones": M + "electric wearable head",
 "camera": M + "electric keys hand glass",
 "microwave": M + "electric kitchen container metal",
 "refrigerator": M + "electric kitchen container metal big white",
 "blender": M + "electric kitchen container sharp",
 "toaster": M + "electric kitchen metal",
 "lamp": M + "electric light",
 "washing machine": M + "electric container metal white",
 "clock": M + "electric round",
 "flashlight": M + "electric light hand metal",
 # instruments
 "piano": M + "music wood keys strings big",
 "guitar": M + "music wood strings",
 "violin": M + "music wood strings hand",
 "harp": M + "music wood strings big",
 "drum": M + "music round",
 "flute": M + "music metal long hand",
 "trumpet": M + "music metal hand yellow",
 "saxophone": M + "music metal yellow",
 # furniture
 "chair": M + "furniture wood legs sit",
 "table": M + "furniture wood legs",
 "desk": M + "furniture wood legs drawers",
 "bed": M + "furniture wood legs big",
 "sofa": M + "furniture fabric sit",
 "bookcase": M + "furniture wood container big",
 "wardrobe": M + "furniture wood container drawers big",
 # kitchen
 "knife": M + "kitchen metal sharp handle hand",
 "spoon": M + "kitchen metal hand",
 "plate": M + "kitchen round white hand",
 "bowl": M + "kitchen round container hand",
 "cup": M + "kitchen container handle hand",
 "frying pan": M + "kitchen metal handle round",
 "kettle": M + "kitchen metal handle container electric",
 "bottle": M + "container glass hand",
 # tools
 "hammer": M + "tool metal handle hand",
 "screwdriver": M + "tool metal handle sharp hand long",
 "saw": M + "tool metal sharp handle",
 "wrench": M + "tool metal hand",
 "shovel": M + "tool metal handle outdoors long",
 "axe": M + "tool metal sharp handle wood outdoors",
 "drill": M + "tool electric metal handle sharp hand",
 "ladder": M + "tool metal big",
 # sports and toys
 "basketball": M + "sport round orange_color",
 "soccer ball": M + "sport round white outdoors",
 "tennis racket": M + "sport strings handle hand",
 "baseball bat": M + "sport wood long hand",
 "golf club": M + "sport metal long handle outdoors",
 "skis": M + "sport long pair outdoors wearable feet",
 "kite": M + "fly outdoors fabric strings",
 "balloon": M + "fly round red hand",
 # everyday things
 "pen": M + "hand long",
 "pencil": M + "hand long wood sharp",
 "book": M + "hand paper",
 "newspaper": M + "hand paper white",
 "scissors": M + "metal sharp hand handle",
 "key": M + "metal hand",
 "umbrella": M + "fabric handle outdoors long",
 "candle": M + "light hand white",
 "toothbrush": M + "hand handle long",
 "mirror": M + "glass",
 "window": M + "glass big",
}

ALIASES = {"airplane": ["plane", "aeroplane"], "television": ["tv"], "smartphone": ["phone", "mobile phone", "cell phone"],
           "soccer ball": ["football"], "sofa": ["couch"], "refrigerator": ["fridge"], "bicycle": ["bike"],
           "headphones": ["headphone"], "pants": ["trousers"], "skis": ["ski"], "shoe": ["shoes"], "sock": ["socks"],
           "glove": ["gloves"], "sunglasses": ["sunglass"], "microwave": ["microwave oven"], "computer": ["laptop"],
           "frying pan": ["pan"], "scissors": ["pair of scissors"], "drum": ["drums"], "pea": ["peas"],
           "grape": ["grapes"], "mouse": ["mice"], "cow": ["cattle"], "rock": ["stone"], "ship": ["boat"]}

def main(out):
    rows, seen = [], collections.defaultdict(list)
    for name, facts in OBJECTS.items():
        true = set(facts.split())
        unknown = true - set(ATTRS)
        assert not unknown, (name, unknown)
        rows.append({"name": name, "aliases": ALIASES.get(name, []), "attributes": {k: k in true for k in ATTRS}})
        seen[frozenset(true)].append(name)
    dup = [v for v in seen.values() if len(v) > 1]
    print(len(rows), "objects", len(ATTRS), "attributes; objects with the same answers:", dup)
    assert not dup
    if out:
        text = "Twenty Questions ontology: common objects, each with a yes/no answer to every question. Hand-written facts."
        with open(out, "w") as f:
            f.write('{\n"description": ' + json.dumps(text) + ',\n"questions": ' + json.dumps(ATTRS, indent=1) + ',\n"objects": [\n')
            f.write(",\n".join(json.dumps(r) for r in rows))
            f.write("\n]}\n")


main(sys.argv[1] if len(sys.argv) > 1 else None)
