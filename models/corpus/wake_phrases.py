"""Text for the wake-word work: phrases that sound like the wake word, and chatter without it.

The default wake phrase is "hey jarvis". :func:`confusable_phrases` are hard negatives (they share
sounds with it: "hey travis", "harvest", "nervous"); :func:`generate_negative_sentences` is the
ordinary speech a microphone hears all day (conversation, TV, radio, commands said to other people),
never containing "jarvis".

>>> "jarvis" in confusable_phrases() and "hey jarvis" not in confusable_phrases()
True
>>> any("jarvis" in s.split() for s in generate_negative_sentences(seed=0, count=200))
False
"""

from __future__ import annotations

import random

from assistant.textnorm import number_to_words, to_spoken

WAKE_PHRASE = "hey jarvis"

_CONFUSABLES = """
jarvis, hey, hey you, hey there, hey guys, hey travis, hey mavis, hey davis, hey harvey, hey marvin
hey darwin, hey jonas, hey charles, hey chavez, hey carlos, hey jarrod, hey java, hey jojo, hey jazz
hey jack, hey jess, hey james, hey jealous, hey jealousy, hey jars, hey jar, hey service, hey harvest
hey nervous, hey marvelous, hey artist, hey parents, hey garage, hey jervais, hey genius, hey jasmine
harvest, jars, service, nervous, marvelous, travis, mavis, davis, harvey, carcass, jarring, jealous
a jar is, the harvest, nervous wreck, it was marvelous, self service, hey siri, hey google, okay google
alexa, hey alexa, hey portal, hey mycroft, hey rhasspy, hey cortana, computer, okay computer
hay harvest, they jarred it, hey charvel, hey garbage, hey doris, hey boris, hey morris, hey janice
hey harris, hey paris, hey purvis, hey elvis, hey jarhead, hey party, hey darling, hey jogging
the harvest festival, pass me the jars, the service was marvelous, I'm so nervous, Travis is here
that's marvelous, hey hey hey, hey hi, say jarring, hey starving, hey carving, hey marbles, hey harness
"""


def _entries(block: str) -> tuple[str, ...]:
    return tuple(e.strip() for line in block.splitlines() for e in line.split(",") if e.strip())


def confusable_phrases() -> tuple[str, ...]:
    """Hard negatives for "hey jarvis", spoken form, most confusable first."""
    phrases = [to_spoken(p) for line in _CONFUSABLES.splitlines() for p in line.split(",") if p.strip()]
    return tuple(p for p in dict.fromkeys(phrases) if p != WAKE_PHRASE)


_NAMES = _entries("""
Emma, Liam, Olivia, Noah, Ava, Oliver, Sophia, Lucas, Mia, Ethan, Priya, Wei, Fatima, Mateo, Aisha, Tom
Sarah, David, Grace, Daniel, Chloe, Sam, Ben, Kate, Josh, Lily, Max, Ruby, Jack, Ella, Omar, Yuki, Kofi
""")
_PLACES = _entries("""
the office, the gym, the park, school, the supermarket, the airport, the beach, the cinema, Grandma's
the dentist, work, the station, the library, the pub, the market, town, the hospital, the garden centre
""")
_THINGS = _entries("""
the keys, my phone, the remote, your jacket, the car, the dog, the laundry, dinner, the dishes
the report, the tickets, the charger, my glasses, the bins, the shopping, the game, the kids, the cat
""")
_TEAMS = _entries("United, City, the Lakers, the Yankees, Arsenal, Madrid, the Giants, Liverpool, the Bears")

# Conversation, television and radio: "{name}", "{place}", "{thing}", "{team}", "{number}", "{city}",
# "{time}" are filled at random.
_TEMPLATES = """
did you see the game last night
I'm going to {place} later, do you need anything
have you seen {thing}
can you pass me {thing}
{name}, dinner's ready
{name}, come down here for a second
what do you want for dinner tonight
I think we should leave at {time}
don't forget {thing}
I'll be back in {number} minutes
where did you put {thing}
it's your turn to do the dishes
I can't believe it's already {time}
we need to talk about the holidays
my mum called earlier, she says hi
the traffic was terrible this morning
are you watching this or can I change the channel
I told {name} we'd meet them at {place}
honestly I think it's going to rain later
can you turn that down a bit, I'm on a call
that's not what I said at all
let's just order pizza
who left {thing} on the stairs
hurry up, we're going to be late
I'll call you back in a minute
yeah, no, that sounds good
wait, what did she say
oh my god, look at this
I don't know, maybe next week
how was your day
do you want a cup of tea
the kids have a school trip on Friday
I'm so tired, I'm going to bed
have you fed the cat
the washing machine is making that noise again
we should paint the bedroom this summer
put it on the table please
I think {team} are going to win
{name} got the job, isn't that great
you know what I mean
it's been {number} years since we went there
and now the weather for {city} and the surrounding area
good evening and welcome to the six o'clock news
in other news, the city council has approved the new budget
stay tuned, we'll be right back after the break
the match kicks off at {time} this evening
{team} scored in the {number}th minute
and that's a wonderful goal from the edge of the box
the forecast for {city} shows sunshine and scattered showers
temperatures will reach {number} degrees this afternoon
coming up next, we talk to the author of a new book
the prime minister said the talks were productive
shares fell sharply in early trading
police are asking witnesses to come forward
this episode is brought to you by our sponsors
call now and get a second one absolutely free
add a pinch of salt and stir for {number} minutes
preheat the oven to {number} degrees
now fold in the eggs, gently
the contestants have {number} minutes left
previously on the show
I never want to see you again
we have to get out of here, now
the detective examined the scene carefully
and the award goes to
thank you all so much for being here tonight
let's take a look at what's trending today
scientists have discovered a new species of frog
the delays are expected to last until {time}
the next train to {city} departs from platform {number}
this is your captain speaking
please keep your seatbelts fastened
welcome back to the podcast
so today we're talking about sleep
the interest rate remains unchanged at {number} percent
a spokesperson declined to comment
the festival runs until Sunday
tickets are on sale now
this has been a public service announcement
you're listening to the breakfast show
here's a song you'll all remember
that was a great track, let's keep the music going
the road is closed due to an accident near {city}
the lottery jackpot this week is {number} million
the defence are all over the place
what a save by the keeper
he shoots, he scores
it's a beautiful day here in {city}
the president will visit {city} next week
and that's all for tonight, good night
I love you too
could you help me with my homework
mum, where's my football kit
I'm hungry, what's for lunch
turn left at the next junction
in three hundred yards, keep right
your order will arrive at {time}
the meeting has been moved to {time}
can everyone see my screen
sorry, you're on mute
let's circle back on that next week
I'll send you the notes after the call
the baby is finally asleep
shh, keep your voice down
grab your coat, we're going out
is it me or is it cold in here
have you got change for the parking
this recipe needs more garlic
the plumber is coming at {time}
I've got a dentist appointment on Tuesday
we should invite {name} and {name} over
nobody tells me anything in this house
I'll do it after this episode
just five more minutes
the dog needs a walk
can you believe the price of petrol
we're running out of milk again
happy birthday to you
three, two, one, go
ready or not, here I come
once upon a time there was a little bear
and they all lived happily ever after
the end, now go to sleep
what's the password for the wifi
my phone's about to die
the car won't start again
did you lock the back door
let's watch a film tonight
I fancy Thai food
who's picking up {name} from {place}
we need to book the flights soon
the neighbours are having a party
where are my car keys
have you seen the news today
I need to call the bank tomorrow
the kettle's just boiled if you want one
{name} said the party starts at {time}
let me finish this email first
what are we doing this weekend
I think I left the oven on
the bus was late again this morning
I'm thinking of getting a new phone
did you remember to buy milk
this coffee is way too strong
can you grab the door
it's freezing outside today
I'll pick you up from {place} at {time}
we could go to {place} on Saturday
mind the step
that film was so boring
I've been waiting for ages
let's go for a walk after lunch
the heating's been off all day
can I borrow your charger
my back is killing me
he never listens to me
she's coming over at {time}
what did the doctor say
we're going on holiday in {number} weeks
I can't find {thing} anywhere
who ate the last biscuit
put your shoes on, we're leaving
brush your teeth and get into bed
no more screens tonight
finish your vegetables
how many times have I told you
I'm going to count to {number}
is there any more juice
can we get a dog
why is the sky blue, mum
are we there yet
I don't want to go to school
that's my seat
give it back
it's not fair
stop fighting, you two
good morning, did you sleep well
I had the weirdest dream last night
the alarm didn't go off
I'm going to be late for work
have a good day at {place}
see you tonight
love you, bye
hello, is that {name}
yes, speaking
could you hold for a moment
I'm just calling about the appointment
can I leave a message
I'll put you through
thanks for calling, goodbye
sorry, I think you have the wrong number
the weather has been lovely this week
they say it'll snow at the weekend
and now for the sport
{team} were beaten {number} nil last night
the transfer window closes on Friday
it's a corner kick for the visitors
the referee has blown the final whistle
that's a yellow card
the crowd are on their feet
and it's a photo finish
she's broken the world record
the umpire calls it out
it's raining at the cricket ground
we'll go live to our reporter in {city}
thousands gathered in the square this afternoon
the storm is expected to reach the coast tonight
residents have been told to stay indoors
the bridge will be closed for repairs until {time}
house prices rose by {number} percent last year
unemployment fell for the third month in a row
the central bank is expected to announce its decision
the company reported record profits
a new study suggests coffee may be good for you
doctors are warning about a rise in flu cases
the museum reopens to the public next month
the concert has been cancelled due to the weather
the film opens in cinemas this Friday
it's the most anticipated album of the year
our next guest needs no introduction
please welcome to the stage
give it up for the band
what a performance that was
the judges are deliberating
you have been eliminated
the votes are in
it's time for a quick quiz
for ten points, name the capital of Canada
that's the correct answer
ooh, so close
let's spin the wheel
you've won a brand new car
in tonight's episode, secrets are revealed
meanwhile, back at the ranch
the lion stalks its prey through the long grass
these birds migrate thousands of miles each year
the glacier has retreated dramatically
deep in the ocean, strange creatures live
the volcano last erupted in the eighteen hundreds
ancient Rome was built on seven hills
the castle was besieged for {number} months
the king died without an heir
today we're making a simple tomato sauce
chop the onions finely
let that simmer for about {number} minutes
season with salt and pepper to taste
and there you have it, delicious
this kitchen gadget will change your life
order before midnight for free delivery
terms and conditions apply
ask your doctor if this is right for you
save up to {number} percent this weekend only
the sale ends Sunday
available in all good stores
now with twice the cleaning power
new and improved formula
you're listening to the drive time show
traffic is building on the ring road
there's a broken down lorry on the motorway
that was the latest from {city}
and now a classic from the eighties
it's {time} and here's the news
the request line is open
our phone lines are now closed
you've been listening to the late show
sleep well and see you tomorrow
in chapter three we learn the truth
she opened the letter with trembling hands
it was a dark and stormy night
he ran as fast as he could
the dragon spread its wings
and the little rabbit hopped away
press one for sales, two for support
your call is important to us
please hold, an agent will be with you shortly
the number you have dialled is not available
the next stop is {place}
please mind the gap
this train terminates here
all change please
boarding will begin in {number} minutes
the flight to {city} is delayed
please proceed to gate {number}
welcome aboard
ladies and gentlemen, we have begun our descent
I'll have a latte please
for here or to go
that'll be {number} pounds
do you take cards
keep the change
can I get the bill please
table for two
is this seat taken
excuse me, do you know the way to {place}
turn right at the lights
it's about {number} minutes walk
"""

# A plain vocabulary for word salad: no names of devices, no "jarvis".
_VOCABULARY = """
the a an and or but so because if then when while after before about around over under into out up down
I you he she it we they me him her us them my your his our their this that these those here there now
is are was were be been being have has had do does did will would can could should might must shall
go come get make take see look know think say tell give find want need like love feel keep leave put
run walk talk eat drink sleep work play read write call ask help try start stop turn open close move
good bad big small long short new old young high low hot cold warm early late right left next last
day night week year time morning evening today tomorrow yesterday hour minute moment while
house home room door window table chair bed kitchen garden street road car bus train school office
man woman child people friend family mother father brother sister baby dog cat bird
water food coffee tea bread milk money book paper phone music picture game ball box bag
very really quite just still also too only even never always often sometimes maybe perhaps already
one two three four five six seven eight ten twenty hundred first second third
yes no okay well oh hey hi hello thanks please sorry actually basically literally anyway
weather rain sun snow wind cloud sky tree flower river sea mountain city country world
question answer problem idea story news show film song party holiday birthday weekend
"""


def _fill(template: str, rng: random.Random) -> str:
    out = template
    for key, choices in (("{name}", _NAMES), ("{place}", _PLACES), ("{thing}", _THINGS), ("{team}", _TEAMS)):
        while key in out:
            out = out.replace(key, rng.choice(choices), 1)
    while "{number}" in out:
        out = out.replace("{number}", str(rng.choice([2, 3, 5, 10, 12, 15, 20, 25, 30, 45, 90, 100])), 1)
    while "{city}" in out:
        out = out.replace("{city}", rng.choice(["London", "Leeds", "Boston", "Dublin", "Lagos", "Delhi"]), 1)
    while "{time}" in out:
        out = out.replace("{time}", f"{rng.randint(1, 12)}:{rng.choice(['00', '15', '30', '45'])}", 1)
    return out


def negative_templates() -> tuple[str, ...]:
    """The conversation/TV templates (written, with placeholders)."""
    return tuple(t.strip() for t in _TEMPLATES.splitlines() if t.strip())


def generate_negative_sentences(seed: int, count: int) -> list[str]:
    """``count`` spoken-form sentences without the wake word: templated conversation and TV (about
    two thirds), word salad from a fixed vocabulary, and numbers read out. Deterministic per seed."""
    rng = random.Random(seed)
    templates = negative_templates()
    vocabulary = _VOCABULARY.split()
    sentences: list[str] = []
    while len(sentences) < count:
        roll = rng.random()
        if roll < 0.7:
            written = _fill(rng.choice(templates), rng)
        elif roll < 0.93:
            written = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 16)))
        else:
            written = " ".join(number_to_words(rng.randint(0, 9999)) for _ in range(rng.randint(1, 4)))
        spoken = to_spoken(written)
        if spoken and "jarvis" not in spoken.split():
            sentences.append(spoken)
    return sentences
