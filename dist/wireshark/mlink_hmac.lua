-- mlink_hmac.lua - HMAC-SHA-512-256 (libsodium's crypto_auth) in plain Lua 5.2, for
-- mlink.lua's MAC check: Wireshark's Lua has no hash functions. A 64-bit word is a pair
-- (high, low) of 32-bit halves, worked on with bit32. Slow (tens of microseconds a
-- packet) but a capture is small. Returns { hmac = function(key, message) -> 32 bytes }.
local band, bor, bxor, bnot = bit32.band, bit32.bor, bit32.bxor, bit32.bnot
local rshift, lshift = bit32.rshift, bit32.lshift
local floor, TWO32 = math.floor, 4294967296

-- FIPS 180-4: first 64 bits of the fractional parts of the cube roots of the first 80
-- primes (K), and of the square roots of the first 8 (initial hash); high, low halves.
local K = {
  0x428a2f98, 0xd728ae22, 0x71374491, 0x23ef65cd, 0xb5c0fbcf, 0xec4d3b2f, 0xe9b5dba5, 0x8189dbbc,
  0x3956c25b, 0xf348b538, 0x59f111f1, 0xb605d019, 0x923f82a4, 0xaf194f9b, 0xab1c5ed5, 0xda6d8118,
  0xd807aa98, 0xa3030242, 0x12835b01, 0x45706fbe, 0x243185be, 0x4ee4b28c, 0x550c7dc3, 0xd5ffb4e2,
  0x72be5d74, 0xf27b896f, 0x80deb1fe, 0x3b1696b1, 0x9bdc06a7, 0x25c71235, 0xc19bf174, 0xcf692694,
  0xe49b69c1, 0x9ef14ad2, 0xefbe4786, 0x384f25e3, 0x0fc19dc6, 0x8b8cd5b5, 0x240ca1cc, 0x77ac9c65,
  0x2de92c6f, 0x592b0275, 0x4a7484aa, 0x6ea6e483, 0x5cb0a9dc, 0xbd41fbd4, 0x76f988da, 0x831153b5,
  0x983e5152, 0xee66dfab, 0xa831c66d, 0x2db43210, 0xb00327c8, 0x98fb213f, 0xbf597fc7, 0xbeef0ee4,
  0xc6e00bf3, 0x3da88fc2, 0xd5a79147, 0x930aa725, 0x06ca6351, 0xe003826f, 0x14292967, 0x0a0e6e70,
  0x27b70a85, 0x46d22ffc, 0x2e1b2138, 0x5c26c926, 0x4d2c6dfc, 0x5ac42aed, 0x53380d13, 0x9d95b3df,
  0x650a7354, 0x8baf63de, 0x766a0abb, 0x3c77b2a8, 0x81c2c92e, 0x47edaee6, 0x92722c85, 0x1482353b,
  0xa2bfe8a1, 0x4cf10364, 0xa81a664b, 0xbc423001, 0xc24b8b70, 0xd0f89791, 0xc76c51a3, 0x0654be30,
  0xd192e819, 0xd6ef5218, 0xd6990624, 0x5565a910, 0xf40e3585, 0x5771202a, 0x106aa070, 0x32bbd1b8,
  0x19a4c116, 0xb8d2d0c8, 0x1e376c08, 0x5141ab53, 0x2748774c, 0xdf8eeb99, 0x34b0bcb5, 0xe19b48a8,
  0x391c0cb3, 0xc5c95a63, 0x4ed8aa4a, 0xe3418acb, 0x5b9cca4f, 0x7763e373, 0x682e6ff3, 0xd6b2b8a3,
  0x748f82ee, 0x5defb2fc, 0x78a5636f, 0x43172f60, 0x84c87814, 0xa1f0ab72, 0x8cc70208, 0x1a6439ec,
  0x90befffa, 0x23631e28, 0xa4506ceb, 0xde82bde9, 0xbef9a3f7, 0xb2c67915, 0xc67178f2, 0xe372532b,
  0xca273ece, 0xea26619c, 0xd186b8c7, 0x21c0c207, 0xeada7dd6, 0xcde0eb1e, 0xf57d4f7f, 0xee6ed178,
  0x06f067aa, 0x72176fba, 0x0a637dc5, 0xa2c898a6, 0x113f9804, 0xbef90dae, 0x1b710b35, 0x131c471b,
  0x28db77f5, 0x23047d84, 0x32caab7b, 0x40c72493, 0x3c9ebe0a, 0x15c9bebc, 0x431d67c4, 0x9c100d4c,
  0x4cc5d4be, 0xcb3e42b6, 0x597f299c, 0xfc657e2a, 0x5fcb6fab, 0x3ad6faec, 0x6c44198c, 0x4a475817,
}
local H0 = {
  0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b, 0x3c6ef372, 0xfe94f82b, 0xa54ff53a, 0x5f1d36f1,
  0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f, 0x1f83d9ab, 0xfb41bd6b, 0x5be0cd19, 0x137e2179,
}

local function rotr(h, l, n)
  if n >= 32 then h, l, n = l, h, n - 32 end
  if n == 0 then return h, l end
  return bor(rshift(h, n), lshift(l, 32 - n)), bor(rshift(l, n), lshift(h, 32 - n))
end

local function shr(h, l, n)  -- n < 32
  return rshift(h, n), bor(rshift(l, n), lshift(h, 32 - n))
end

-- The 32-bit big-endian word of s at byte i (1-based).
local function word(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- One 128-byte block of s at pos into the state H (16 halves).
local function block(H, s, pos)
  local wh, wl = {}, {}
  for t = 0, 15 do
    wh[t], wl[t] = word(s, pos + 8 * t), word(s, pos + 8 * t + 4)
  end
  for t = 16, 79 do
    local h1, l1 = rotr(wh[t - 15], wl[t - 15], 1)
    local h2, l2 = rotr(wh[t - 15], wl[t - 15], 8)
    local h3, l3 = shr(wh[t - 15], wl[t - 15], 7)
    local s0h, s0l = bxor(h1, h2, h3), bxor(l1, l2, l3)
    h1, l1 = rotr(wh[t - 2], wl[t - 2], 19)
    h2, l2 = rotr(wh[t - 2], wl[t - 2], 61)
    h3, l3 = shr(wh[t - 2], wl[t - 2], 6)
    local s1h, s1l = bxor(h1, h2, h3), bxor(l1, l2, l3)
    local lo = wl[t - 16] + s0l + wl[t - 7] + s1l
    wl[t] = lo % TWO32
    wh[t] = (wh[t - 16] + s0h + wh[t - 7] + s1h + floor(lo / TWO32)) % TWO32
  end
  local ah, al, bh, bl, ch, cl, dh, dl = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
  local eh, el, fh, fl, gh, gl, hh, hl = H[9], H[10], H[11], H[12], H[13], H[14], H[15], H[16]
  for t = 0, 79 do
    local h1, l1 = rotr(eh, el, 14)
    local h2, l2 = rotr(eh, el, 18)
    local h3, l3 = rotr(eh, el, 41)
    local chh = bxor(band(eh, fh), band(bnot(eh), gh))
    local chl = bxor(band(el, fl), band(bnot(el), gl))
    local lo = hl + bxor(l1, l2, l3) + chl + K[2 * t + 2] + wl[t]
    local t1l = lo % TWO32
    local t1h = (hh + bxor(h1, h2, h3) + chh + K[2 * t + 1] + wh[t] + floor(lo / TWO32)) % TWO32
    h1, l1 = rotr(ah, al, 28)
    h2, l2 = rotr(ah, al, 34)
    h3, l3 = rotr(ah, al, 39)
    local majh = bxor(band(ah, bh), band(ah, ch), band(bh, ch))
    local majl = bxor(band(al, bl), band(al, cl), band(bl, cl))
    lo = bxor(l1, l2, l3) + majl
    local t2l = lo % TWO32
    local t2h = (bxor(h1, h2, h3) + majh + floor(lo / TWO32)) % TWO32
    hh, hl, gh, gl, fh, fl = gh, gl, fh, fl, eh, el
    lo = dl + t1l
    eh, el = (dh + t1h + floor(lo / TWO32)) % TWO32, lo % TWO32
    dh, dl, ch, cl, bh, bl = ch, cl, bh, bl, ah, al
    lo = t1l + t2l
    ah, al = (t1h + t2h + floor(lo / TWO32)) % TWO32, lo % TWO32
  end
  local v = { ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl }
  for i = 1, 16, 2 do
    local lo = H[i + 1] + v[i + 1]
    H[i + 1] = lo % TWO32
    H[i] = (H[i] + v[i] + floor(lo / TWO32)) % TWO32
  end
end

local function be32(x)
  return string.char(floor(x / 16777216) % 256, floor(x / 65536) % 256, floor(x / 256) % 256,
                     x % 256)
end

local function sha512(s)
  local bits = #s * 8
  s = s .. "\128" .. string.rep("\0", (111 - #s) % 128) .. string.rep("\0", 8) ..
      be32(floor(bits / TWO32)) .. be32(bits % TWO32)
  local H = {}
  for i = 1, 16 do H[i] = H0[i] end
  for pos = 1, #s, 128 do block(H, s, pos) end
  local out = {}
  for i = 1, 16 do out[i] = be32(H[i]) end
  return table.concat(out)
end

local function xor_pad(key, byte)
  local out = {}
  for i = 1, 128 do out[i] = string.char(bxor(key:byte(i) or 0, byte)) end
  return table.concat(out)
end

-- HMAC-SHA-512 truncated to 32 bytes; key at most 128 bytes (mlink's are 32).
local function hmac(key, message)
  local inner = sha512(xor_pad(key, 0x36) .. message)
  return sha512(xor_pad(key, 0x5c) .. inner):sub(1, 32)
end

return { hmac = hmac, sha512 = sha512 }
