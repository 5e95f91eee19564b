"""The words of the course's small English–French world, with their French morphology.

Every English word has exactly one French translation, so that every English sentence of
the grammar has exactly one French reference. Each noun carries its gender and a few
semantic tags; adjectives and verbs say which tags they combine with, so that the
sampler writes "the dog eats the cake" but never "the cake eats the dog".

French forms are written out in full (no rules applied at run time), so that a test can
check them against the regular rules of French morphology independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

# The five person/number slots the grammar uses, in the order of `Verb.fr_forms`
# (the course never says "tu": English "you" is always translated "vous").
PERSONS = ((1, "sg"), (3, "sg"), (1, "pl"), (2, "pl"), (3, "pl"))
GENDERS = ("m", "f")

# Words starting with these letters take l' / n' / qu' / j' / d' in French. Every French
# word of the lexicon that starts with "h" has a silent ("mute") h; a test checks it.
FRENCH_VOWELS = frozenset("aeiouyàâäéèêëîïôöùûüœh")
H_MUET = frozenset({"homme", "hommes", "hôtel", "hôtels", "hôpital", "hôpitaux",
                    "horloge", "horloges", "heureux", "heureuse", "heureuses"})


@dataclass(frozen=True, slots=True)
class Noun:
    """A noun: English and French singular and plural, French gender, semantic tags."""

    en: str
    en_pl: str
    fr: str
    fr_pl: str
    gender: str
    tags: frozenset[str]

    def en_form(self, plural: bool) -> str:
        """The English form: singular or plural."""
        return self.en_pl if plural else self.en

    def fr_form(self, plural: bool) -> str:
        """The French form: singular or plural."""
        return self.fr_pl if plural else self.fr


@dataclass(frozen=True, slots=True)
class Adjective:
    """An adjective: its four French forms (m sg, f sg, m pl, f pl) and where it goes."""

    en: str
    fr: tuple[str, str, str, str]
    pre: bool  # French position: True = before the noun (petit, grand, bon ...)
    tags: frozenset[str]  # nouns it can describe ("any" = every noun)
    fr_vowel: str | None = None  # masculine singular before a vowel: bel, nouvel, vieil

    def form(self, gender: str, plural: bool) -> str:
        """The French form that agrees with a noun of this gender and number."""
        return self.fr[(gender == "f") + 2 * plural]


@dataclass(frozen=True, slots=True)
class Verb:
    """A verb: English base and 3sg forms, French present tense in the five `PERSONS`."""

    en: str
    en_3sg: str
    fr: str  # infinitive, for reading
    fr_forms: tuple[str, str, str, str, str]
    subject: frozenset[str]  # tags of the nouns that can be its subject
    object: frozenset[str] | None  # tags of possible objects; None = intransitive

    @property
    def transitive(self) -> bool:
        """True if the verb takes an object."""
        return self.object is not None

    def fr_form(self, person: int, number: str) -> str:
        """The French present-tense form for this person (1, 2, 3) and number."""
        return self.fr_forms[PERSONS.index((person, number))]


@dataclass(frozen=True, slots=True)
class Adverb:
    """An adverb: English and French (French has no inflection for these)."""

    en: str
    fr: str


# --------------------------------------------------------------------------- nouns
# en  en_pl  fr  fr_pl  gender  tags ("-" = regular plural: +s, French -eau/-al/-s rules)
_NOUNS = """
man men homme - m person
boy - garçon - m person
king - roi - m person
brother - frère - m person
father - père - m person
uncle - oncle - m person
prince - prince - m person
husband - mari - m person
son - fils fils m person
waiter - serveur - m person
actor - acteur - m person
gentleman gentlemen monsieur messieurs m person
woman women femme - f person
girl - fille - f person
queen - reine - f person
sister - sœur - f person
mother - mère - f person
aunt - tante - f person
princess princesses princesse - f person
waitress waitresses serveuse - f person
actress actresses actrice - f person
lady ladies dame - f person
cat - chat - m animal
dog - chien - m animal
bird - oiseau - m animal,flier,songbird,catchable
horse - cheval chevaux m animal
mouse mice souris souris f animal,catchable
cow - vache - f animal
rabbit - lapin - m animal,catchable
duck - canard - m animal,flier
goat - chèvre - f animal
frog - grenouille - f animal,catchable
bear - ours ours m animal
wolf wolves loup - m animal
fox foxes renard - m animal
owl - chouette - f animal,flier
pig - cochon - m animal
snake - serpent - m animal
spider - araignée - f animal,catchable
elephant - éléphant - m animal
lion - lion - m animal
tiger - tigre - m animal
monkey - singe - m animal
turtle - tortue - f animal
bee - abeille - f animal,flier
ant - fourmi - f animal
hen - poule - f animal
donkey - âne - m animal
squirrel - écureuil - m animal,catchable
whale - baleine - f animal
car - voiture - f vehicle
bike - vélo - m vehicle,buildable
boat - bateau - m vehicle,buildable
train - train - m vehicle
plane - avion - m vehicle,flier
bus buses bus bus m vehicle
truck - camion - m vehicle
house - maison - f place,building
school - école - f place,building
church churches église - f place,building
hotel - hôtel - m place,building
hospital - hôpital hôpitaux m place,building
garden - jardin - m place
city cities ville - f place
village - village - m place
street - rue - f place
bridge - pont - m place,building
river - rivière - f place
forest - forêt - f place
beach beaches plage - f place
island - île - f place
mountain - montagne - f place
castle - château - m place,building
station - gare - f place,building
shop - magasin - m place,building
museum - musée - m place,building
library libraries bibliothèque - f place,building
park - parc - m place
book - livre - m thing,readable,writable,openable
letter - lettre - f thing,readable,writable,openable
table - table - f thing,buildable
chair - chaise - f thing,buildable,breakable
door - porte - f thing,openable
window - fenêtre - f thing,openable,breakable
lamp - lampe - f thing,breakable
clock - horloge - f thing,breakable
key - clé - f thing
ball - balle - f thing,catchable
hat - chapeau - m thing
shoe - chaussure - f thing
box boxes boîte - f thing,container,openable,buildable
cup - tasse - f thing,container,breakable
bottle - bouteille - f thing,container,openable,breakable
glass glasses verre - m thing,container,breakable
picture - tableau - m thing
phone - téléphone - m thing,breakable
computer - ordinateur - m thing,breakable
umbrella - parapluie - m thing,openable
bag - sac - m thing,container,openable
pen - stylo - m thing
map - carte - f thing,readable
newspaper - journal journaux m thing,readable
plate - assiette - f thing,breakable
mirror - miroir - m thing,breakable
candle - bougie - f thing
coat - manteau - m thing
dress dresses robe - f thing
apple - pomme - f food
cake - gâteau - m food
egg - œuf - m food
carrot - carotte - f food
banana - banane - f food
tomato tomatoes tomate - f food
lemon - citron - m food
cookie - biscuit - m food
pear - poire - f food
strawberry strawberries fraise - f food
cherry cherries cerise - f food
pie - tarte - f food
sandwich sandwiches sandwich sandwichs m food
onion - oignon - m food
peach peaches pêche - f food
tree - arbre - m plant
flower - fleur - f plant
rose - rose - f plant
plant - plante - f plant
bush bushes buisson - m plant
mushroom - champignon - m plant,food
"""

# ---------------------------------------------------------------------- adjectives
# en  m_sg  f_sg  m_pl  f_pl  position(pre/post)  tags  [masculine form before a vowel]
_ADJECTIVES = """
small petit petite petits petites pre any
big grand grande grands grandes pre any
good bon bonne bons bonnes pre thing,food,vehicle,place,animal
bad mauvais mauvaise mauvais mauvaises pre thing,food,vehicle,place
young jeune jeune jeunes jeunes pre person,animal
old vieux vieille vieux vieilles pre person,animal,thing,vehicle,place,plant vieil
new nouveau nouvelle nouveaux nouvelles pre thing,vehicle,place nouvel
beautiful beau belle beaux belles pre any bel
pretty joli jolie jolis jolies pre person,animal,thing,place,plant
long long longue longs longues pre vehicle,place,thing
red rouge rouge rouges rouges post thing,vehicle,plant,food,place
blue bleu bleue bleus bleues post thing,vehicle,place
green vert verte verts vertes post thing,vehicle,plant,food,place
yellow jaune jaune jaunes jaunes post thing,vehicle,plant,food,place
black noir noire noirs noires post thing,vehicle,animal,place
white blanc blanche blancs blanches post thing,vehicle,animal,plant,place
grey gris grise gris grises post thing,vehicle,animal,place
brown brun brune bruns brunes post animal,thing
purple violet violette violets violettes post thing,plant,vehicle
happy heureux heureuse heureux heureuses post person,animal
sad triste triste tristes tristes post person,animal
tired fatigué fatiguée fatigués fatiguées post person,animal
angry fâché fâchée fâchés fâchées post person,animal
hungry affamé affamée affamés affamées post person,animal
clever intelligent intelligente intelligents intelligentes post person,animal
calm calme calme calmes calmes post person,animal,place
kind gentil gentille gentils gentilles post person,animal
funny drôle drôle drôles drôles post person,animal
lazy paresseux paresseuse paresseux paresseuses post person,animal
shy timide timide timides timides post person,animal
proud fier fière fiers fières post person,animal
sick malade malade malades malades post person,animal,plant
wild sauvage sauvage sauvages sauvages post animal,plant
brave courageux courageuse courageux courageuses post person,animal
rich riche riche riches riches post person
poor pauvre pauvre pauvres pauvres post person
famous célèbre célèbre célèbres célèbres post person,place,animal
fast rapide rapide rapides rapides post vehicle,animal,person
slow lent lente lents lentes post vehicle,animal,person
heavy lourd lourde lourds lourdes post thing,vehicle
light léger légère légers légères post thing
expensive cher chère chers chères post thing,vehicle,food,place
clean propre propre propres propres post thing,vehicle,place
dirty sale sale sales sales post thing,vehicle,place,animal
empty vide vide vides vides post container,place
full plein pleine pleins pleines post container,place
broken cassé cassée cassés cassées post thing,vehicle
closed fermé fermée fermés fermées post openable,building
round rond ronde ronds rondes post thing,food
square carré carrée carrés carrées post thing
hot chaud chaude chauds chaudes post food
cold froid froide froids froides post food,place
fresh frais fraîche frais fraîches post food,plant
sweet sucré sucrée sucrés sucrées post food
delicious délicieux délicieuse délicieux délicieuses post food
strange étrange étrange étranges étranges post any
modern moderne moderne modernes modernes post place,vehicle,thing
ancient ancien ancienne anciens anciennes post place,thing
dangerous dangereux dangereuse dangereux dangereuses post animal,place,vehicle
noisy bruyant bruyante bruyants bruyantes post animal,person,place,vehicle
quiet tranquille tranquille tranquilles tranquilles post place,animal,person
soft doux douce doux douces post thing,animal
strong fort forte forts fortes post person,animal
wet mouillé mouillée mouillés mouillées post animal,thing,person
dry sec sèche secs sèches post thing,food,plant
ugly laid laide laids laides post any
huge énorme énorme énormes énormes post any
tiny minuscule minuscule minuscules minuscules post any
curious curieux curieuse curieux curieuses post person,animal
polite poli polie polis polies post person
busy occupé occupée occupés occupées post person,building
thin mince mince minces minces post person,animal
"""

# ------------------------------------------------------------------------- verbs
# en  en_3sg  fr(infinitive)  1sg 3sg 1pl 2pl 3pl  subject-tags  object-tags ("-" = none)
_ANIM = "person,animal"
_ANY = "person,animal,vehicle,place,thing,food,plant"
_MOVABLE = "person,animal,vehicle,thing,food,plant"  # everything but places
_GOODS = "thing,food,vehicle,plant,place,animal"  # what one can want, buy or sell
_MADE = "building,buildable"
_VERBS = f"""
see sees voir vois voit voyons voyez voient {_ANIM} {_ANY}
like likes aimer aime aime aimons aimez aiment {_ANIM} {_ANY}
love loves adorer adore adore adorons adorez adorent person {_ANY}
chase chases chasser chasse chasse chassons chassez chassent {_ANIM} person,animal,vehicle
eat eats manger mange mange mangeons mangez mangent {_ANIM} food
watch watches regarder regarde regarde regardons regardez regardent {_ANIM} {_ANY}
find finds trouver trouve trouve trouvons trouvez trouvent {_ANIM} {_MOVABLE}
want wants vouloir veux veut voulons voulez veulent {_ANIM} {_GOODS}
hear hears entendre entends entend entendons entendez entendent {_ANIM} person,animal,vehicle
follow follows suivre suis suit suivons suivez suivent {_ANIM} person,animal,vehicle
know knows connaître connais connaît connaissons connaissez connaissent {_ANIM} person,animal,place
buy buys acheter achète achète achetons achetez achètent person {_GOODS}
sell sells vendre vends vend vendons vendez vendent person {_GOODS}
open opens ouvrir ouvre ouvre ouvrons ouvrez ouvrent person openable
close closes fermer ferme ferme fermons fermez ferment person openable
read reads lire lis lit lisons lisez lisent person readable
write writes écrire écris écrit écrivons écrivez écrivent person writable
help helps aider aide aide aidons aidez aident {_ANIM} person,animal
call calls appeler appelle appelle appelons appelez appellent person person,animal
push pushes pousser pousse pousse poussons poussez poussent {_ANIM} thing,vehicle
pull pulls tirer tire tire tirons tirez tirent {_ANIM} thing,vehicle
bite bites mordre mords mord mordons mordez mordent animal person,animal,food,thing
catch catches attraper attrape attrape attrapons attrapez attrapent {_ANIM} catchable
visit visits visiter visite visite visitons visitez visitent person place
build builds construire construis construit construisons construisez construisent person {_MADE}
break breaks casser casse casse cassons cassez cassent {_ANIM} breakable
hold holds tenir tiens tient tenons tenez tiennent person thing,food,animal,plant
take takes prendre prends prend prenons prenez prennent person thing,food,vehicle
meet meets rencontrer rencontre rencontre rencontrons rencontrez rencontrent person person
draw draws dessiner dessine dessine dessinons dessinez dessinent person {_ANY}
paint paints peindre peins peint peignons peignez peignent person building,thing,vehicle
wash washes laver lave lave lavons lavez lavent person thing,vehicle,animal,food
cook cooks cuisiner cuisine cuisine cuisinons cuisinez cuisinent person food
lose loses perdre perds perd perdons perdez perdent {_ANIM} thing
hide hides cacher cache cache cachons cachez cachent {_ANIM} thing,food
admire admires admirer admire admire admirons admirez admirent person {_ANY}
smell smells sentir sens sent sentons sentez sentent {_ANIM} food,plant
touch touches toucher touche touche touchons touchez touchent {_ANIM} {_MOVABLE}
run runs courir cours court courons courez courent {_ANIM} -
sleep sleeps dormir dors dort dormons dormez dorment {_ANIM} -
sing sings chanter chante chante chantons chantez chantent person,songbird -
swim swims nager nage nage nageons nagez nagent {_ANIM} -
walk walks marcher marche marche marchons marchez marchent {_ANIM} -
laugh laughs rire ris rit rions riez rient person -
cry cries pleurer pleure pleure pleurons pleurez pleurent person -
wait waits attendre attends attend attendons attendez attendent {_ANIM} -
arrive arrives arriver arrive arrive arrivons arrivez arrivent {_ANIM},vehicle -
leave leaves partir pars part partons partez partent {_ANIM},vehicle -
dance dances danser danse danse dansons dansez dansent person -
jump jumps sauter saute saute sautons sautez sautent {_ANIM} -
play plays jouer joue joue jouons jouez jouent {_ANIM} -
work works travailler travaille travaille travaillons travaillez travaillent person -
fall falls tomber tombe tombe tombons tombez tombent {_ANIM},thing,plant -
come comes venir viens vient venons venez viennent {_ANIM},vehicle -
win wins gagner gagne gagne gagnons gagnez gagnent person -
fly flies voler vole vole volons volez volent flier -
"""

# Frequency adverbs go before the verb in English and after it in French
# ("the cat often sees the dog" -> "le chat voit souvent le chien").
FREQUENCY_ADVERBS = (
    Adverb("often", "souvent"),
    Adverb("always", "toujours"),
    Adverb("sometimes", "parfois"),
    Adverb("rarely", "rarement"),
    Adverb("usually", "généralement"),
)
# Degree adverbs modify a predicative adjective ("is very fast" -> "est très rapide").
DEGREE_ADVERBS = (
    Adverb("very", "très"),
    Adverb("quite", "assez"),
    Adverb("too", "trop"),
    Adverb("really", "vraiment"),
)


def _english_plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _french_plural(word: str) -> str:
    if word.endswith(("s", "x", "z")):
        return word
    if word.endswith(("eau", "eu")):
        return word + "x"
    if word.endswith("al"):
        return word[:-2] + "aux"
    return word + "s"


def _tags(field: str) -> frozenset[str]:
    return frozenset(field.split(","))


def _parse_nouns() -> tuple[Noun, ...]:
    nouns = []
    for line in _NOUNS.strip().splitlines():
        en, en_pl, fr, fr_pl, gender, tags = line.split()
        en_pl = _english_plural(en) if en_pl == "-" else en_pl
        fr_pl = _french_plural(fr) if fr_pl == "-" else fr_pl
        nouns.append(Noun(en, en_pl, fr, fr_pl, gender, _tags(tags)))
    return tuple(nouns)


def _parse_adjectives() -> tuple[Adjective, ...]:
    adjectives = []
    for line in _ADJECTIVES.strip().splitlines():
        en, m, f, mpl, fpl, position, tags, *vowel = line.split()
        adjectives.append(
            Adjective(en, (m, f, mpl, fpl), position == "pre", _tags(tags), *vowel)
        )
    return tuple(adjectives)


def _parse_verbs() -> tuple[Verb, ...]:
    verbs = []
    for line in _VERBS.strip().splitlines():
        en, en_3sg, fr, s1, s3, p1, p2, p3, subject, obj = line.split()
        object_tags = None if obj == "-" else _tags(obj)
        verbs.append(Verb(en, en_3sg, fr, (s1, s3, p1, p2, p3), _tags(subject), object_tags))
    return tuple(verbs)


@dataclass(frozen=True)
class Lexicon:
    """All the words of the world, parsed once (see `lexicon()`)."""

    nouns: tuple[Noun, ...]
    adjectives: tuple[Adjective, ...]
    verbs: tuple[Verb, ...]
    frequency_adverbs: tuple[Adverb, ...] = FREQUENCY_ADVERBS
    degree_adverbs: tuple[Adverb, ...] = DEGREE_ADVERBS


@cache
def lexicon() -> Lexicon:
    """The world's lexicon: about 125 nouns, 70 adjectives, 55 verbs (parsed on first use)."""
    return Lexicon(_parse_nouns(), _parse_adjectives(), _parse_verbs())


def compatible(tags: frozenset[str], noun: Noun) -> bool:
    """True if a word restricted to `tags` can combine with `noun` ("any" matches all)."""
    return "any" in tags or not tags.isdisjoint(noun.tags)


def starts_with_vowel(word: str) -> bool:
    """True if a French word elides what precedes it: l'arbre, n'aime, qu'il, j'écris."""
    return word[:1] in FRENCH_VOWELS
