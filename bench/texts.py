"""Prompt text for the benchmark: varied natural prose, written for this project.

A prompt of n tokens is the first n tokens of this text, cut mid-sentence on purpose: the
model then continues the sentence instead of ending its answer, so every run really
generates all its new tokens (an early end-of-text would make the timings incomparable).
"""

PROSE = """\
The lighthouse on the northern cape had been kept by the same family for three generations. \
Every evening Marta climbed the ninety-two steps with a can of oil and a cloth, polished the \
great lens until it threw her reflection back at her in pieces, and lit the lamp just as the \
fishing boats began to turn for home. She knew each boat by the sound of its engine. The \
Sparrow coughed twice before it caught; the Old Margaret hummed like a kettle; the new steel \
trawler from the south made almost no sound at all, which she distrusted.

In the village below, the baker started work at three in the morning. He said that bread \
was mostly patience: flour, water, salt and yeast, and then the long hours in which nothing \
seemed to happen while the dough quietly filled with air. His daughter wanted to add olives \
and rosemary to everything. He let her try one tray a week, and by the end of the summer the \
rosemary loaves sold out before the plain ones.

Maps have always told small lies. The first charts of this coast showed a harbour that did \
not exist and left out a reef that sank two merchant ships in a single winter. Mapmakers \
copied each other, so an error drawn in one city could travel for a century before anyone \
sailed close enough to correct it. When the surveyors finally came with their chains and \
theodolites, they found that the whole peninsula had been drawn eleven miles too far west.

Tides are the slow breathing of the ocean. The moon pulls on the water nearest to it a little \
more strongly than on the centre of the earth, and on the far side the water is pulled a \
little less, so the sea bulges on both sides at once. As the planet turns beneath these two \
bulges, most shores see two high tides and two low tides a day. When the sun and the moon \
line up, their pulls add together and the spring tides run highest; at the half moon they \
partly cancel, and the neap tides barely rise.

On market days the square filled before sunrise. There were crates of green apples and \
crooked carrots still dusted with soil, wheels of cheese wrapped in cloth, honey in jars of \
every size, and a man who sharpened knives on a stone wheel he turned with his foot. \
Children were sent to fetch things and came back with the wrong things, or with nothing and \
a story. By noon the stalls were half empty, the pigeons had grown bold, and the musician by \
the fountain had started playing the same three songs again.

The path to the pass climbed through pine forest for the first hour, then broke out onto a \
slope of loose grey stones where every step slid back half its length. Above the stones lay \
a meadow so full of small blue flowers that it looked, from a distance, like a patch of sky \
that had fallen and caught on the mountain. The walkers rested there, ate bread and hard \
cheese, and watched a pair of eagles turn in slow circles without once moving their wings.

Rain came to the city in the late afternoon. It darkened the pavements street by street, \
sent the office workers running with newspapers held over their heads, and filled the gutters \
with a rushing brown water that carried leaves, bus tickets and one bright yellow toy boat. \
In the café on the corner the windows steamed up, and the owner, who had seen a thousand \
storms, turned on the lights, put the kettle back on the stove and waited for the door to \
start opening.

A letter arrived for Marta in October, forty years after it had been posted. The envelope \
was soft and brown at the edges, and the stamp showed a king who had died long before she was \
born. It was addressed to her grandmother. Inside, in careful handwriting, a young sailor \
promised to come back in the spring, described a storm off the coast of a country whose \
name had since changed twice, and asked whether the lamp was still burning on the cape.

Learning to play an instrument is mostly learning to listen. A beginner hears only whether a \
note is right or wrong; a student learns to hear whether it is early or late, loud or soft, \
bright or dull; a musician hears how each note leans toward the next. Teachers say the same \
thing in different ways for years, and one day the student finally understands what they \
meant, usually long after the lesson in which it was first explained.

The engineers who built the old railway bridge did not have computers, so they tested their \
ideas with models made of wood and wire, and with arithmetic done by hand in thick ledgers. \
They overbuilt everything, partly from caution and partly because they could not calculate \
the loads exactly. That is why the bridge still carries trains that weigh four times as much \
as the ones it was designed for, while several newer bridges nearby have already been \
replaced.

In the school at the edge of the village there was one classroom, one stove, and a shelf of \
books that had been read so often their spines had turned white. The teacher, Mr. Okafor, \
believed that every child could learn anything if it was explained from the right side. He \
taught fractions with apples, geography with the fishing boats' radio reports, and history \
by asking the oldest people in the village to come and tell the children what they \
remembered.

Bees find their way home by the sun, even when clouds hide it, because they can see the \
pattern of polarised light across the sky. A forager that discovers a good field of flowers \
returns to the hive and dances: the angle of the dance tells the others the direction \
relative to the sun, and its length tells them the distance. The other bees follow the \
dancer, touching her with their antennae, and then fly out to find the field themselves.

When the power failed during the winter storm, the whole village went quiet at once. The \
refrigerators stopped humming, the street lights went out, and for the first time in years \
people could see the stars from the main road. Neighbours knocked on each other's doors with \
candles and torches. The baker, whose ovens burned wood, kept baking through the night, and \
by morning there was a queue outside his shop that stretched past the church.

Old clocks need more care than people expect. Their oil thickens, their springs tire, and \
the smallest speck of dust in the wrong place can stop them for good. The clockmaker on the \
hill worked with a glass in one eye and tweezers finer than a needle, and he talked to the \
clocks while he worked, quietly, the way some people talk to horses. He said that a clock \
which had stopped was only waiting for someone to understand what it needed.

The ferry crossed the strait four times a day in summer and twice in winter. On calm days \
passengers stood at the rail and watched for dolphins; on rough days they sat inside, \
holding their coffee cups level with both hands while the whole cabin rose and fell. The \
captain had made the crossing more than ten thousand times. He claimed he could tell the \
weather for the next day from the colour of the water under the bow, and he was rarely wrong.

Far out on the plain, where the road ran straight for thirty miles, a small petrol station \
stood alone beside a water tower. The woman who ran it kept a notebook of every traveller \
who stopped: their car, where they were going, and one thing they had said. After twenty \
years the notebooks filled a whole shelf, and reading them was like listening to a very long \
conversation between strangers who had never met.

Cooking rice well is harder than it looks. Too much water and the grains turn to paste; too \
little and they burn to the bottom of the pot while the top stays hard. Some cooks measure \
with the first joint of a finger, some with a cup, and some by the sound the pot makes when \
the water is almost gone. Every one of them will tell you, with complete confidence, that \
the other methods are wrong.

The observatory on the ridge was built when the nearest town was only a cluster of farms, \
and the sky above it was so dark that the Milky Way cast faint shadows. Now the town has \
grown, its lights spread an orange glow across half the horizon, and the astronomers point \
their telescopes the other way, toward the sea. On the clearest nights they still find new \
comets, small smudges of light that move a little against the stars from one hour to the \
next.

Every autumn the geese left the marsh in long uneven lines, calling to each other as they \
rose. The birds at the front of the line worked hardest, cutting through the air, and they \
took turns, dropping back to rest in the easier air behind the others. Farmers stopped \
their tractors to watch them go, and children ran along the dykes waving, as if the geese \
might wave back, which in a way they seemed to do.

The library had been a wool merchant's warehouse, and on damp days the old beams still \
smelled faintly of sheep. Its collection was odd and generous: shipping registers from the \
eighteenth century, a complete run of a farming magazine, children's books in eleven \
languages, and a drawer of local photographs that nobody had ever catalogued. The librarian \
spent her lunch hours putting names to the faces, one photograph at a time, by asking \
everyone who came in whether they recognised anybody.

Glass is made from sand, soda and lime, melted together in a furnace hotter than any \
kitchen oven. The glassblower gathers a glowing lump on the end of a long hollow pipe, \
blows gently, turns the pipe without stopping, and shapes the bubble with wet wooden tools \
and folded newspaper. If the glass cools too quickly it cracks, so finished pieces spend a \
whole night in a second oven whose heat is lowered hour by hour until morning.

By the end of the season the lighthouse was to be automated. Engineers came to fit a new \
lamp that would switch itself on at dusk and send a message to the harbour office if it \
failed. Marta showed them the old logbooks, the brass instruments and the spare lens kept \
wrapped in blankets in the storeroom, and then she went down the ninety-two steps for the \
last time as keeper, carrying her grandmother's letter in the pocket of her coat.
"""


def prompt_text(tokenizer, n_tokens: int) -> str:
    """The first `n_tokens` tokens of PROSE as text (re-encoding may shift the count by one)."""
    ids = tokenizer(PROSE, add_special_tokens=False)["input_ids"]
    if n_tokens > len(ids):
        raise ValueError(f"PROSE has only {len(ids)} tokens")
    return tokenizer.decode(ids[:n_tokens])
