"""The shapes world's closed vocabulary: shapes, colors, sizes, positions, answers."""

SHAPES = ("circle", "square", "triangle", "star")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
NUMBERS = ("0", "1", "2", "3", "4")
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
YES_NO = ("yes", "no")
# 3x3 grid over the image, row-major from the top left
POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
RELATIONS = ("left of", "right of", "above", "below")

ANSWERS = COLORS + SHAPES + SIZES + NUMBERS + YES_NO + POSITIONS

RGB = {  # base colour of each name; objects jitter around it
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 200, 30),
    "purple": (135, 55, 185),
    "orange": (245, 135, 25),
}

QUESTION_TYPES = ("color", "shape", "count_shape", "count_color", "count_all",
                  "exists", "size", "relation", "where")
