// The built-in training text for synthesized models' tokenizers: plain English prose about
// everyday and technical topics, written for this project (no third-party text). It only needs
// to be varied enough that byte-level BPE learns a few thousand merges.
#include <string_view>

#include "atoma/engine/tokenizer.h"

namespace atoma::engine {
namespace {

constexpr std::string_view kCorpus =
    R"corpus(The morning train left the station at seven, and most of the passengers were still half asleep.
A woman near the window opened a notebook and began to write a list: bread, coffee, batteries,
a birthday card for her brother, and a new pair of gloves before the weather turned cold.

Across the aisle, two students argued about whether the library would be open on Sunday. One of
them insisted that the schedule had changed last month; the other was sure it hadn't. Neither
had checked. "We'll find out when we get there," said the first, and they both laughed.

Networks of computers agree on a result by exchanging messages. Each node signs what it computed,
and the others check the signature before they trust it. If two honest nodes run the same program
on the same input, they should produce the same output, bit for bit. When they don't, somebody has
made a mistake, or somebody is lying, and the protocol has to decide which.

Cooking rice is simple once you know the ratio. Rinse one cup of rice until the water runs clear,
add one and a half cups of water and a pinch of salt, bring it to a boil, then cover the pot and
lower the heat. After fifteen minutes, turn off the stove and let it rest for ten more. Don't lift
the lid too early, or the steam escapes and the grains stay hard in the middle.

The old lighthouse stood on a rock at the end of the harbor. For almost a hundred years its lamp
turned every night, warning ships away from the reef. Today the light is automatic, and the keeper's
house has become a small museum with maps, photographs, and a logbook full of careful handwriting.

In 1969, people watched on television as astronauts walked on the Moon. The journey took about
three days each way. Engineers had checked every valve, wire, and line of code many times, because
there would be no second chance if something failed far from home.

Good software is written twice: once to make it work, and once to make it clear. The second pass
removes the clever tricks that nobody else can read, names things for what they mean, and adds a
test for every bug that was found. A short function that does one thing is easier to trust than a
long one that does five.

def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, i * 2))

int main(void) { printf("hello, world\n"); return 0; }

The weather report promised rain in the afternoon, so the farmers worked quickly to bring in the
hay. Clouds gathered over the hills by noon. By two o'clock the first drops fell, heavy and warm,
and the children ran outside to stand in the puddles while their parents called them back in.

Mathematics begins with counting: one, two, three, four, five, six, seven, eight, nine, ten. Later
come fractions like one half and three quarters, then negative numbers, then equations with an
unknown x. A student who understands why 12 times 12 is 144 has learned more than one who only
remembers it. Prime numbers such as 2, 3, 5, 7, 11, 13, 17, 19, 23 and 29 have no divisors except
one and themselves.

Music changes how a room feels. A slow song on a piano can make a crowded cafe seem quiet, while a
fast drum beat makes people tap their feet without noticing. Musicians practice scales for years
so that their fingers move without thinking, leaving the mind free to listen.

Our team meets every Tuesday to review the week's work. We look at what shipped, what broke, and
what we learned. Each person says what they will do next, and what help they need. The meeting is
short because the notes are written before it starts, and anyone who missed it can read them later.

The river was wider than they expected. They walked along the bank until they found a bridge made
of old wooden planks and rope. It swayed when they stepped on it, but it held. On the other side
the path climbed through a forest of tall pines, and the air smelled of resin and wet earth.

Questions are the beginning of science. Why is the sky blue? Why do leaves change color in the
autumn? How does a bird know where to fly in the winter? Each answer leads to new questions, and
the people who keep asking them are the ones who find something nobody knew before.

A good letter is clear, polite and brief. State what you want in the first sentence, explain why in
the next few, and thank the reader at the end. If you are asking for a decision, give a date by
which you need it. If you are answering a question, answer it first and explain afterwards.

She opened the door, looked at the empty street, and smiled. The city was quiet at this hour. Only
the baker on the corner was awake, pulling trays of warm bread from the oven, and the smell drifted
all the way to her window. Tomorrow she would leave for the coast; today she would simply walk.

Health depends on small habits repeated every day: sleeping enough, drinking water, walking, eating
vegetables and fruit, and talking with friends. None of these is difficult alone. The difficult part
is doing them again tomorrow, and the day after that, when nobody is watching.

Every village has its stories. There is the tale of the miller who outwitted a king, the one about
the fox who learned to read, and the legend of the bell that rings by itself before a storm. The
old people tell them in winter, when the nights are long and the fire is warm.

The committee reviewed the proposal and asked for three changes: a clearer budget, a smaller first
phase, and a plan for measuring results. The authors agreed to the first two and explained why the
third would take another month. After some discussion, the committee accepted the revised plan.

Volcanoes form where molten rock rises through cracks in the crust. Some erupt violently, throwing
ash high into the atmosphere; others pour out rivers of glowing lava that cool slowly into black
basalt. Geologists measure tiny earthquakes and changes in the shape of the ground to predict when
a mountain might wake up, though exact forecasts remain difficult.

The bicycle mechanic adjusted the brakes, tightened the chain, and pumped both tyres. "Ride it
around the block," he suggested, wiping grease from his thumbs. The customer returned grinning:
the gears shifted smoothly, the saddle no longer squeaked, and the wobbly wheel was perfectly true.

Photosynthesis converts sunlight, water, and carbon dioxide into sugar and oxygen. Chlorophyll,
the pigment that makes leaves green, absorbs red and blue wavelengths while reflecting green.
Without this quiet chemistry, almost every food chain on Earth would collapse within weeks.

Databases keep records organized in tables with rows and columns. An index speeds up searches, a
transaction groups several changes so that either all of them happen or none does, and a journal
written before each update lets the system recover its state after an unexpected power failure.

Yesterday's football match ended in a dramatic draw. The visitors scored twice in the first half,
but the home side equalized during injury time with a spectacular volley from outside the box.
Supporters sang long after the final whistle, and the coach praised his players' determination.

Archaeologists carefully brushed dust away from fragments of pottery, bronze jewelry, and charred
grain. Each object was photographed, labelled, and catalogued before being moved. Together they
suggested that a busy market town once flourished here, trading wool, honey, timber, and salt.

Budgeting means deciding in advance where money should go. List monthly income, subtract fixed
expenses such as rent, insurance, and electricity, then divide what remains between savings,
groceries, transport, and occasional treats. Reviewing the plan quarterly prevents surprises.

Whales communicate using songs that travel hundreds of kilometres underwater. Humpbacks repeat
complex phrases that slowly evolve over seasons, and researchers still debate their purpose:
courtship, navigation, or something we have not yet imagined.

Version control records every change to a project's files. Developers create branches to try
experimental features, merge them once reviewed, and revert mistakes quickly. Meaningful commit
messages explain why something changed, which helps colleagues understand decisions years later.

The gardener knelt beside raised beds of tomatoes, zucchini, lettuce, carrots, and fragrant basil.
She pinched off yellowing leaves, checked for aphids, mulched generously with straw, and watered
deeply at dawn, when evaporation was lowest and the soil could absorb moisture gradually.

Airplanes fly because their wings push air downward, and the air pushes back upward. Pilots
monitor altitude, airspeed, heading, fuel, and weather throughout each journey. Modern autopilots
handle routine cruising, yet takeoffs and landings still demand skilful, attentive humans.

Chess rewards patience and imagination. Beginners memorize how knights, bishops, rooks, queens,
and pawns move; experienced players recognize patterns, sacrifice material for initiative, and
calculate forcing sequences several moves deep before committing to a plan.

Winter arrived suddenly that year. Frost silvered the meadows, icicles hung from gutters, and the
lake froze thick enough for skating. Neighbours shovelled driveways together, shared thermos
flasks of cocoa, and joked that spring must have forgotten their address.
)corpus";

}  // namespace

std::string_view BuiltinTrainingCorpus() { return kCorpus; }

}  // namespace atoma::engine
