#pragma once
// OpenBLAS's CBLAS header for Swift. The library is not linked: loader.c opens it on first use,
// single-threaded (see there why).
#include <cblas.h>
