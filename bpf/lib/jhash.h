/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bob Jenkins' lookup3 final mix (public domain), the word variants only. */
#ifndef ML_LIB_JHASH_H
#define ML_LIB_JHASH_H

#include <linux/types.h>

#define ML_JHASH_INITVAL 0xdeadbeefU

static __always_inline __u32 ml_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

static __always_inline __u32 ml_jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	a += ML_JHASH_INITVAL + initval + (3 << 2);
	b += ML_JHASH_INITVAL + initval + (3 << 2);
	c += ML_JHASH_INITVAL + initval + (3 << 2);
	c ^= b; c -= ml_rol32(b, 14);
	a ^= c; a -= ml_rol32(c, 11);
	b ^= a; b -= ml_rol32(a, 25);
	c ^= b; c -= ml_rol32(b, 16);
	a ^= c; a -= ml_rol32(c, 4);
	b ^= a; b -= ml_rol32(a, 14);
	c ^= b; c -= ml_rol32(b, 24);
	return c;
}

#endif
