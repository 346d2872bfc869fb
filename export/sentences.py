"""Real sentences for the parity check of text tasks, from one word to past the token window.

Random token ids exercise every sequence length but not the distribution a text model sees;
these do: punctuation, numbers, questions, short replies, and one paragraph longer than any
``max_length`` we ship (it checks the truncated path).
"""

from __future__ import annotations

SENTENCES: tuple[str, ...] = (
    "Hello!",
    "Thanks.",
    "What is the capital of France?",
    "How do I reset my password?",
    "A woman is slicing an onion.",
    "She sold seashells by the seashore.",
    "Traffic was heavy on the highway this morning.",
    "Please deliver the package to the back door.",
    "The quick brown fox jumps over the lazy dog.",
    "Two dogs are running through a field of tall grass.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "A man is playing a guitar on the street corner while people walk past.",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
    "In 1969, astronauts landed on the Moon for the first time in human history.",
    "An error occurred while processing your request; please try again later.",
    "Can you recommend a good book about the history of mathematics?",
    "The weather tomorrow will be sunny with a light breeze from the west.",
    "The new phone has a larger battery and a brighter screen than last year's model.",
    "Canary releases shift a small share of traffic to a new version before promoting it.",
    "Tensor parallelism splits each layer's weights across several GPUs of one host.",
    "I loved this movie; the acting was superb and the plot kept me guessing until the end.",
    "The stock market fell sharply on Tuesday after the central bank raised rates by 0.5%.",
    "Machine learning models can be quantised to eight-bit integers to run faster on CPUs, "
    "at some cost in accuracy that has to be measured rather than assumed.",
    "The committee will meet again next month to review the proposal in detail, including its "
    "budget, its timeline and the risks identified by the external auditors in the spring.",
    "Customer: my order #48213 arrived damaged, the box was crushed and two of the four glasses "
    "were broken. Agent: I'm sorry to hear that! I've issued a refund of $37.96 to your card.",
    (
        "The history of the city begins with a small fishing village on the northern bank of "
        "the river, where families dried their catch on wooden racks and traded salt with the "
        "farmers of the valley. Over three centuries the village grew into a market town, then "
        "into a port that shipped grain, timber and wool to the coast. A stone bridge replaced "
        "the ferry in 1742; a railway followed in 1851, and with it the mills whose chimneys "
        "still mark the skyline. The mills closed one after another in the twentieth century, "
        "and the town, having lost a third of its people, turned its warehouses into flats, "
        "studios and a museum of industry that now draws visitors from across the country. "
        "Today the old quays host a weekly market, the bridge carries only walkers and cyclists, "
        "and the river, cleaner than it has been for two hundred years, holds salmon again. "
        "Historians still argue about when exactly the first houses were built, because the "
        "earliest written record, a tax roll kept by the abbey upstream, mentions the place only "
        "in passing, as a settlement of eleven households owing eels and firewood every autumn. "
        "Archaeologists who dug beneath the market square in 1998 found post holes, fish bones "
        "and a bronze pin that may be six hundred years older than that roll, but the dating of "
        "the layers is disputed, and the museum's label, written by a committee, says only that "
        "people have lived by this bend of the river for a very long time."
    ),
)
