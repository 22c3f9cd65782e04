"""Fixed word lists of the synthetic corpus: opinion words, intensifiers, sentence templates,
star summaries, and the names of people and places in the records.

Every opinion word here and in :mod:`~rayrec.data.synthetic.presets` is in the Hu and Liu
opinion lexicon (positive words in positive-words.txt, negative in negative-words.txt); no
filler, noun or template word is. All opinion words are adjectives so they fit every template.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Opinion words usable in every domain; users' preferred subsets are drawn from these.
GENERAL_POSITIVE = _words(
    "great excellent good perfect amazing awesome nice wonderful fantastic reliable impressive"
    " beautiful solid easy outstanding superb enjoyable brilliant pleasant incredible terrific"
    " fabulous flawless elegant lovely remarkable superior decent"
)
GENERAL_NEGATIVE = _words(
    "terrible poor awful bad cheap disappointing horrible useless mediocre annoying frustrating"
    " lousy pathetic ugly worthless overpriced overrated unreliable weak confusing dull sloppy"
    " shoddy flawed dreadful awkward lame unbearable"
)
#: Intensifiers (not in the lexicon). Index 0 means "no intensifier".
ADVERBS: tuple[str, ...] = ("", "very ", "really ", "quite ", "so ", "extremely ", "truly ")
_STAR_SUMMARIES = ("One Star", "Two Stars", "Three Stars", "Four Stars", "Five Stars")
_OPINION_TEMPLATES: tuple[str, ...] = (
    "the {noun} {is} {op}",
    "the {noun} {was} {op}",
    "{op} {noun}",
    "I found the {noun} {op}",
    "overall the {noun} {seems} {op}",
    "in my opinion the {noun} {is} {op}",
)

# People and places: reviewer names (Amazon records) and business records (Yelp).
_FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara"
    " Richard Susan Joseph Jessica Thomas Sarah Chris Karen Daniel Nancy Matt Lisa Anthony"
    " Betty Mark Sandra Steven Ashley Paul Emily Andrew Donna Josh Michelle Kevin Carol Brian"
)
_LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Garcia Wilson Anderson Taylor Thomas"
    " Moore Jackson Martin Lee Thompson White Harris Clark Lewis Walker Hall Young King Wright"
    " Lopez Hill Scott Adams"
)
_BUSINESS_PREFIXES = (
    *_words("Cactus Copper Mesa Saguaro Sonoran Camelback Sunset Desert Canyon Juniper Olive"),
    *("Blue Door", "Red Rock", "Old Town", "Elm Street", "Maple", "Harbor", "Union", "Lucky"),
)
_STREETS = (
    "Main St",
    "Camelback Rd",
    "Indian School Rd",
    "Central Ave",
    "Mill Ave",
    "Scottsdale Rd",
    "Broadway",
    "Market St",
)
#: (city, state, latitude, longitude, postal code prefix).
_AZ_CITIES = (
    ("Phoenix", "AZ", 33.448, -112.074, "850"),
    ("Scottsdale", "AZ", 33.494, -111.926, "852"),
    ("Tempe", "AZ", 33.425, -111.940, "852"),
    ("Mesa", "AZ", 33.415, -111.831, "852"),
    ("Chandler", "AZ", 33.306, -111.841, "852"),
    ("Glendale", "AZ", 33.538, -112.186, "853"),
)
_OTHER_CITIES = (
    ("Las Vegas", "NV", 36.170, -115.140, "891"),
    ("Henderson", "NV", 36.040, -114.982, "890"),
    ("Cleveland", "OH", 41.499, -81.694, "441"),
    ("Pittsburgh", "PA", 40.441, -79.996, "152"),
    ("Charlotte", "NC", 35.227, -80.843, "282"),
    ("Madison", "WI", 43.073, -89.401, "537"),
)
_WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
