"""The intents the assistant understands and the sentence shapes of each (DESIGN.md §4 plus the extra
corpus domains). Names and slots follow Home Assistant's built-in intents where one exists.

A :class:`Rule` is one intent's templates (syntax in :mod:`assistant.nlu.grammar`) with a prior
``weight``; generic readings (the lights of an area, a bare question) weigh a little less than
specific ones, so a configured device or a dedicated phrase wins a tie. ``device_kinds`` says which
kinds of device the ``{name}`` slot is for: "set the desk fan to 40 percent" is a fan speed,
"set the desk lamp to 40 percent" a brightness.

Slots: ``name`` ``area`` ``contact`` are the user's names; ``brightness`` ``percentage`` ``volume``
(0..100), ``temperature``, ``duration_s`` are numbers; ``time`` is ``"HH:MM"``; ``day``, ``message``,
``query``, ``item``, ``location``, ``topic``, ``word`` and a timer's ``name`` are the spoken words.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.nlu.grammar import Template

SWITCHABLE = frozenset({"light", "switch", "plug", "fan", "media", "climate"})


@dataclass(frozen=True)
class Rule:
    intent: str
    templates: tuple[Template, ...]
    weight: float = 1.0
    device_kinds: frozenset[str] | None = None
    """Kinds of device ``{name}`` may be; None: any."""


def rule(intent: str, *templates: str, weight: float = 1.0, kinds: frozenset[str] | None = None) -> Rule:
    return Rule(intent, tuple(Template(t) for t in templates), weight, kinds)


# Shared pieces of sentences.
_LIGHTS = "(lights | light | lamps)"
_ALL_LIGHTS = f"[all] the {_LIGHTS}"
_DEVICE = "the ({name} [in the {area}] | {area} {name})"
_AREA_LIGHTS = f"({_ALL_LIGHTS} in the {{area}} | [all] the {{area}} {_LIGHTS})"
_COVERS = "(blinds | curtains | shades | shutters)"
_WHATS = "(what's | what is)"
_I_WANT = "(i want | i'd like | i would like | i need)"
_TIMER = "(timer | countdown)"
_DAY = "[{day}]"


def _brightness_templates(target: str) -> tuple[str, ...]:
    """The ways to set the brightness of ``target`` (a device, or the lights of an area)."""
    return (
        f"(set | dim | brighten | change | adjust | make | lower | raise) {target} to {{brightness}}",
        f"(turn | bring | dim) {target} (up | down) to {{brightness}}",
        f"make {target} {{brightness}}",
        f"(put | have) {target} (at | on) {{brightness}}",
        f"[set] {target} brightness [to] {{brightness}}",
        f"(set | change | turn | put) the brightness (of | in | for) {target} to {{brightness}}",
        f"{target} to {{brightness}}",
        f"{_I_WANT} {target} at {{brightness}}",
        f"can {target} be at {{brightness}}",
    )


RULES: tuple[Rule, ...] = (
    # ------------------------------------------------------------------ lights and switches
    rule(
        "HassTurnOn",
        "(turn | switch | power | put | flip) on " + _DEVICE,
        "(turn | switch | put | flip | get) the {name} [in the {area}] on",
        "{name} on [in the {area}]",
        "(activate | enable | fire up) the {name}",
        _I_WANT + " the {name} on",
        "can (we | i) have the {name} on",
        "the {name} (needs to | should) be on",
        "let's get the {name} going",
        kinds=SWITCHABLE,
    ),
    rule(
        "HassTurnOn",
        f"(turn | switch | put) on {_AREA_LIGHTS}",
        f"(turn | switch) the {_LIGHTS} on in the {{area}}",
        f"(turn | switch) the {{area}} {_LIGHTS} on",
        f"{_LIGHTS} on in the {{area}}",
        f"{{area}} {_LIGHTS} on",
        "light up the {area}",
        "it's too dark in (the {area} | here)",
        weight=0.97,
    ),
    # "turn on the kitchen": the area's lights; weaker than a device, even one nobody configured.
    rule("HassTurnOn", "(turn | switch) on the {area}", weight=0.9),
    rule(
        "HassTurnOff",
        "(turn | switch | power | shut | cut) off " + _DEVICE,
        "(turn | switch | shut | power | cut) the {name} [in the {area}] off",
        "{name} off [in the {area}]",
        "(kill | cut | deactivate | disable) the {name}",
        "shut down the {name}",
        "i don't need the {name} anymore",
        "the {name} can go off",
        "we're done with the {name}",
        _I_WANT + " the {name} off",
        kinds=SWITCHABLE,
    ),
    rule(
        "HassTurnOff",
        f"(turn | switch | shut) off {_AREA_LIGHTS}",
        f"(turn | switch) the {_LIGHTS} off in the {{area}}",
        f"(turn | switch) the {{area}} {_LIGHTS} off",
        f"{_LIGHTS} off in the {{area}}",
        f"{{area}} {_LIGHTS} off",
        f"nobody's in the {{area}} [{_LIGHTS}] off",
        weight=0.97,
    ),
    rule("HassTurnOff", "(turn | switch) off the {area}", weight=0.9),
    rule("HassLightSet", *_brightness_templates(_DEVICE), kinds=frozenset({"light"})),
    rule(
        "HassLightSet",
        *_brightness_templates(_AREA_LIGHTS),
        "(set | change | turn | put) the brightness (in | for) the {area} to {brightness}",
        weight=0.97,
    ),
    rule(
        "HassFanSetSpeed",
        "(set | change | turn) the {name} [speed] to {percentage}",
        "{name} speed [to] {percentage}",
        "(turn | bring) the {name} (up | down) to {percentage}",
        "(put | run | set) the {name} (on | at) {percentage}",
        kinds=frozenset({"fan"}),
    ),
    # ------------------------------------------------------------------ climate
    rule(
        "HassClimateSetTemperature",
        "(set | change | put | turn | bump | drop | bring | raise | lower) the"
        " (temperature | thermostat | heat | heating | a c | air conditioning | air conditioner)"
        " [up | down] (to | on | at) {temperature} [in the {area}]",
        "(set | change | put) the {area} [temperature | thermostat | heating] to {temperature}",
        "make it {temperature} in (here | the {area})",
        "make the {area} {temperature}",
        "(warm | heat | cool) [up | down] the ({area} | house | room | place) [up | down] to {temperature}",
        "thermostat [to | at] {temperature}",
        _I_WANT + " it {temperature} [in (the {area} | here)]",
        "it's [too | so | very] (cold | hot | warm | chilly | freezing) [in here] [set it to] {temperature}",
    ),
    rule(
        "HassClimateGetTemperature",
        _WHATS + " the temperature (in the {area} | in here | inside)",
        "how (warm | cold | hot) is it (in the {area} | in here | inside)",
        _WHATS + " the thermostat (set to | at | on)",
        "what temperature is it (inside | in here | in the {area})",
    ),
    # ------------------------------------------------------------------ timers
    rule(
        "HassStartTimer",
        "(set | start | make | create | put) (a | an | the | my)"
        f" [{{name:label}}] {_TIMER} [on] for {{duration_s}}",
        f"(set | start | make | create) (a | an | the | my) {_TIMER} for {{duration_s}}"
        " for the {name:label}",
        f"[set] {_TIMER} [for] {{duration_s}}",
        f"[{{name:label}}] {_TIMER} [for] {{duration_s}}",
        f"{{duration_s}} [{{name:label}}] {_TIMER}",
        f"(set | start | give me | make) (a | an) {{duration_s}} [{{name:label}}] {_TIMER}",
        "count down [from] {duration_s}",
        "time my {name:label} for {duration_s}",
        "start the clock for {duration_s}",
        f"{_I_WANT} a {_TIMER} for {{duration_s}}",
        "(let me know | tell me) when {duration_s} (is | are | has | have) (up | passed | gone)",
    ),
    rule(
        "HassCancelTimer",
        "(cancel | stop | delete | kill | clear | remove | end | turn off)"
        " (the | my | that | all | all the | all my) (timer | timers)",
        "(timer | timers) off",
        "get rid of the timer",
        "never mind the timer",
        "i don't need the timer anymore",
    ),
    rule(
        "HassTimerStatus",
        "how (much time | long) is left [on the timer]",
        "how's my timer (doing | going)",
        "when will the timer go off",
        "how long until the timer (ends | goes off | is done)",
        "time left on the timer",
        "how many (minutes | seconds) are left [on the timer]",
    ),
    # ------------------------------------------------------------------ alarms and reminders
    rule(
        "SetAlarm",
        "(set | create) (an | my | the) alarm (for | at) {time} " + _DAY,
        "wake me [up] [{day}] at {time}",
        "wake me [up] at {time} {day}",
        "alarm [for] {time} " + _DAY,
        "get me up at {time} " + _DAY,
        "i (need | have) to (get up | be up) at {time} " + _DAY,
        "i want to (wake up | get up) at {time} " + _DAY,
        "can i get an alarm for {time} " + _DAY,
    ),
    rule(
        "CancelAlarm",
        "(cancel | turn off | delete | stop | switch off | remove | disable)"
        " (my | the | all my | all the) (alarm | alarms)",
        "alarm off",
        "i don't need an alarm [today | tomorrow | tonight]",
        "no alarm [today | tomorrow | tonight]",
    ),
    rule(
        "SetReminder",
        "remind me to {message} [{day}] [at {time}]",
        "remind me to {message} [at {time}] {day}",
        "remind me ({day} | at {time} | {day} at {time} | in {duration_s}) to {message}",
        "remind me to {message} in {duration_s}",
        "in {duration_s} remind me to {message}",
        "(set | create) a reminder [for {time}] to {message} " + _DAY,
        "(set | create) a reminder to {message} at {time}",
        "don't let me forget to {message}",
        "i need a reminder to {message} [at {time}]",
    ),
    # ------------------------------------------------------------------ calls and messages
    rule(
        "Call",
        "(call | phone | ring | dial | facetime | video call | ring up | call up) {contact} [on speaker]",
        "give {contact} a (call | ring)",
        "get {contact} on the phone",
        "(place | make) a call to {contact}",
        "start a call with {contact}",
        "get me {contact}",
        "(i need | i want) to (talk to | speak to | speak with | call) {contact}",
        "(can i | let's) call {contact}",
    ),
    rule(
        "SendMessage",
        "send a (message | text) to {contact} (saying | that says | that) {message}",
        "(text | message) {contact} [and say | saying | that] {message}",
        "tell {contact} [that] {message}",
        "(send | shoot) {contact} a (text | message) [saying | that says] {message}",
        "let {contact} know [that] {message}",
        "i want to (text | message) {contact} {message}",
    ),
    # ------------------------------------------------------------------ media
    rule(
        "PlayMusic",
        "(play | put on | shuffle | queue up) {query}",
        "(play | put on)"
        " (some | a bit of | the song | the album by | something by | music by | songs by) {query}",
        "(play | start | put on) (my | the) {query} playlist",
        "i want to listen to {query}",
        "i'm in the mood for [some] {query}",
        "let's hear {query}",
        "(can we have | how about) some {query}",
    ),
    rule(
        "HassMediaPause",
        "pause [the (music | song | movie | show | video | playback) | playback | it | that]",
        "stop (the music | playing | the song)",
        "hit pause",
        "hold the music",
        "(hold on | wait) pause [that | it]",
    ),
    rule(
        "HassMediaUnpause",
        "resume [the (music | movie | song | show) | playback]",
        "unpause [the (music | song | movie) | it]",
        "(keep | continue | carry on | go on) playing",
        "go on keep playing",
        "start the music again",
        "press play",
        "continue the (song | music | movie)",
        "play it again from where it stopped",
        "[okay] you can resume",
    ),
    rule(
        "HassMediaNext",
        "next [song | track | one]",
        "skip [this song | this one | this track | it | ahead | the song | song | track]",
        "(play | go to) the next (song | track)",
        "i don't like this song skip it",
        "not this song",
    ),
    rule(
        "HassMediaPrevious",
        "previous (song | track)",
        "go back [a song | one song | a track]",
        "play the (last | previous) (song | track) [again]",
        "back one track",
        "play that song again",
        "rewind to the last track",
    ),
    rule(
        "HassSetVolume",
        "(set | turn | change | put | make | bring | adjust | lower | raise) the volume [up | down]"
        " (to | at) {volume}",
        "[set] volume [to] {volume}",
        "make the volume {volume}",
        "turn it (up | down) to {volume}",
        "set the speaker to {volume}",
        "(can we have | i want) the volume at {volume}",
    ),
    rule(
        "VolumeUp",
        "(turn | crank | pump) (it | the volume | the music) up",
        "(louder | volume up)",
        "(turn | pump) up the volume",
        "(make it | a bit | little | a little) louder",
        "raise the volume",
        "i can't hear it",
    ),
    rule(
        "VolumeDown",
        "turn (it | the volume | the music) down",
        "(quieter | volume down)",
        "(lower | turn down) the volume",
        "bring the volume down",
        "(make it | a bit | a little) quieter",
        "(that's | it's) [way] too loud",
    ),
    # ------------------------------------------------------------------ weather, time, date
    rule(
        "HassGetWeather",
        _WHATS + " the weather [going to be] [like] [in {location}] " + _DAY,
        _WHATS + " the weather [like] {day} in {location}",
        "[the] weather [forecast] [for | in] [{location}] " + _DAY,
        "[the] weather [forecast] [for] {day} in {location}",
        "is it going to (rain | snow | be warm | be cold | be sunny | be hot) [in {location}] " + _DAY,
        "will it (rain | snow) [{day}] [in {location}]",
        "will it (rain | snow) in {location} {day}",
        "do i need (an umbrella | a jacket | a coat) " + _DAY,
        _WHATS + " the forecast [for] ({day} | {location} | {location} {day})",
        "how (hot | cold | warm | windy) will it be " + _DAY,
        "how windy is it " + _DAY,
        "(what's it | what is it) like outside",
        "how's the weather [looking] " + _DAY,
        "is it (sunny | cold | raining | hot | warm | snowing) (outside | in {location})",
        _WHATS + " the (high | low) " + _DAY,
        _WHATS + " the temperature outside",
        "(tell me | check | give me) the (weather | forecast) [for] [{location}] " + _DAY,
    ),
    rule(
        "HassGetCurrentTime",
        "(what | what's the) time (is it | have we got) [now]",
        _WHATS + " the time",
        "do you know what time it is",
        "(time | the time)",
        "have you got the time",
        "current time",
        "(is it late | how late is it)",
        "(tell me | give me) the time",
        "tell me what time it is",
    ),
    rule(
        "GetDate",
        _WHATS + " [the] (date | today's date) [today | tomorrow]",
        "what (day | month | year) is it [today]",
        "what day of the week is it",
        "is today (monday | tuesday | wednesday | thursday | friday | saturday | sunday)",
        "(tell me | give me) [the | today's] date",
    ),
    # ------------------------------------------------------------------ lists, calendar, news
    rule(
        "HassShoppingListAddItem",
        "(add | put | stick | write down | write) {item} (to | on) (my | the) (shopping | grocery) list",
        "(add | put) {item} (to | on) (my | the) (list | shopping)",
        "shopping list add {item}",
        "{item} on the (shopping | grocery) list",
        "(we need | i need to buy | we're out of | we're running low on | don't let me forget) {item}",
    ),
    rule("HassShoppingListAddItem", "add {item}", weight=0.8),
    # "turn on bbc radio one": weaker than a device nobody configured ("turn on the blender").
    rule("PlayMusic", "turn on {query}", weight=0.3),
    rule(
        "AddTodo",
        "(add | put) {item} (to | on) (my | the) (to do list | tasks | to dos | to do)",
        "(add | create) a task to {item}",
        "new to do {item}",
        "to do list add {item}",
        "add to my to do list {item}",
        "make a note to {item}",
        "i (need | have) to {item} (put it on my list | add it to my (to dos | to do list | list))",
    ),
    rule(
        "GetCalendar",
        _WHATS + " on (my | the) (calendar | schedule | agenda) " + _DAY,
        "do i have (any meetings | anything | any appointments | anything on) " + _DAY,
        _WHATS + " my (schedule | calendar | agenda) " + _DAY,
        _WHATS + " next on my calendar",
        "when is my next (meeting | appointment)",
        "am i free " + _DAY,
        "what do i have (going on | on) " + _DAY,
        "anything on my calendar " + _DAY,
        _WHATS + " my (first | next) meeting " + _DAY,
        "(read me | check | tell me) my (calendar | appointments | schedule) [for] " + _DAY,
    ),
    rule(
        "GetNews",
        _WHATS + " the [latest] [{topic:label}] news [today]",
        "(any | the latest) {topic:label} news",
        _WHATS + " (happening | going on) in the world",
        _WHATS + " in the news [today]",
        "what are today's top stories",
        "anything new in {topic:label}",
        "(give me | read me | tell me) the [latest] [{topic:label}] (headlines | news)",
        "play the news",
        "news update",
    ),
    # ------------------------------------------------------------------ fun and knowledge
    rule(
        "TellJoke",
        "tell me (a | another) [dad | knock knock | funny | good] joke",
        "make me laugh",
        "(tell me | say) something funny",
        "joke",
        "(do you know | got | know) any [good] jokes",
        "i need a laugh",
    ),
    rule(
        "Trivia",
        "ask me a trivia question",
        "quiz me",
        "(give me | tell me) a (fun | random) fact",
        "tell me something interesting",
        "teach me something new",
        "start a trivia game",
        "let's play trivia",
        "do you have a fun fact",
        "i want to play a quiz",
    ),
    rule(
        "SpellWord",
        "how (do you | do i | to) spell {word}",
        _WHATS + " the [correct] spelling of {word}",
        "how is {word} spelled",
        "spell [the word] {word}",
        "tell me how to spell {word}",
    ),
    rule(
        "DefineWord",
        "what does [the word] {word} mean",
        _WHATS + " the (meaning | definition) of [the word] {word}",
        "define [the word] {word}",
        "look up {word} in the dictionary",
        "give me the definition of {word}",
        "tell me what {word} means",
    ),
    rule("DefineWord", _WHATS + " {word}", weight=0.8),
    rule(
        "GeneralQuestion",
        "(do you know | i was wondering | quick question | tell me | look up | search for | find out)"
        " {query}",
        weight=0.8,
    ),
    # ------------------------------------------------------------------ vacuum, covers, locks
    rule(
        "HassVacuumStart",
        "(start | run) the {name} [in the {area}]",
        "start (vacuuming | cleaning)",
        "(vacuum | clean | hoover) the ({area} | house)",
        "send the {name} to the {area}",
        "have the {name} clean the {area}",
        "get the {name} going",
        "{name} start",
        "let the {name} run",
        kinds=frozenset({"vacuum"}),
    ),
    rule(
        "HassVacuumReturnToBase",
        "send the {name} (home | back | back to (its | the) (dock | base))",
        "dock the {name}",
        "{name} (go home | back to the dock)",
        "return the {name} to (base | the dock | its dock)",
        "stop cleaning and go home",
        "tell the {name} to go home",
        kinds=frozenset({"vacuum"}),
    ),
    # "the blinds in the kitchen", "all the curtains": every cover there, not a device called "blinds".
    rule("HassOpenCover", f"open (all the {_COVERS} [in the {{area}}] | the {_COVERS} in the {{area}})"),
    rule("HassCloseCover", f"close (all the {_COVERS} [in the {{area}}] | the {_COVERS} in the {{area}})"),
    rule(
        "HassOpenCover",
        "(open | raise | lift | roll up | open up) " + _DEVICE,
        "pull the {name} up",
        "{name} up",
        "let some light into the {area}",
        kinds=frozenset({"cover"}),
    ),
    rule(
        "HassCloseCover",
        "(close | lower | shut | draw | pull down | roll down) " + _DEVICE,
        "{name} down",
        "the sun is too bright in the {area}",
        kinds=frozenset({"cover"}),
    ),
    rule(
        "HassLock",
        "(lock | lock up | secure) the {name}",
        "make sure the {name} is locked",
        "{name} lock",
        "lock (all the doors | up | the house | everything)",
        "did i lock the {name} lock it",
        kinds=frozenset({"lock"}),
    ),
    rule(
        "HassUnlock",
        "unlock the {name} [for the delivery | so i can get in | for the (cleaner | guests | kids)]",
        "{name} unlock",
        "(open | release | undo) the lock on the {name}",
        "let me in the {name}",
        kinds=frozenset({"lock"}),
    ),
)

#: Words a bare question starts with ("how tall is mount everest") → GeneralQuestion{query}.
QUESTION_WORDS = frozenset(
    [
        *("what", "what's", "whats", "who", "who's", "how", "how's", "when", "where", "where's", "why"),
        *("which", "whose", "is", "are", "was", "were", "do", "does", "did", "can", "could", "will"),
        *("would", "should", "convert"),
    ]
)
INTENT_NAMES = tuple(dict.fromkeys([r.intent for r in RULES] + ["GeneralQuestion"]))
