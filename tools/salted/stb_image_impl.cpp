// The one translation unit of the `salted` program that compiles stb_image
// (salted/io/image.hpp only declares it; see that header).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG  // what the program reads; keeps the decoder small
#include <stb/stb_image.h>
