# SPDX-License-Identifier: Apache-2.0
"""Lua helpers for Redis scripts that handle wei amounts and u64 nonces.

Redis runs Lua 5.1, whose numbers are doubles: exact only below 2^53 (about 0.009 ether in
wei). Amounts are therefore stored as decimal strings and added, subtracted and compared here
in base-10^7 limbs (a limb sum stays far below 2^53), so no amount ever loses a wei.
Nonces (u64) are compared the same way, and stored in sorted sets as zero-padded 20-digit
members, whose lexicographic order is their numeric order.
"""

from __future__ import annotations

NONCE_WIDTH = 20

DECIMAL_LIB = r"""
local LIMB = 7
local BASE = 10000000

local function norm(a)
  a = tostring(a or '0')
  a = string.gsub(a, '^0+', '')
  if a == '' then return '0' end
  return a
end

local function limbs(a)
  local out = {}
  local i = #a
  while i > 0 do
    local j = math.max(1, i - LIMB + 1)
    out[#out + 1] = tonumber(string.sub(a, j, i))
    i = j - 1
  end
  return out
end

local function join(t)
  local n = #t
  while n > 1 and t[n] == 0 do t[n] = nil; n = n - 1 end
  local parts = {tostring(t[n])}
  for i = n - 1, 1, -1 do parts[#parts + 1] = string.format('%07d', t[i]) end
  return table.concat(parts)
end

local function dcmp(a, b)
  a, b = norm(a), norm(b)
  if #a ~= #b then return (#a < #b) and -1 or 1 end
  if a == b then return 0 end
  return (a < b) and -1 or 1
end

local function dadd(a, b)
  local x, y, out, carry = limbs(norm(a)), limbs(norm(b)), {}, 0
  for i = 1, math.max(#x, #y) do
    local s = (x[i] or 0) + (y[i] or 0) + carry
    if s >= BASE then out[i] = s - BASE; carry = 1 else out[i] = s; carry = 0 end
  end
  if carry > 0 then out[#out + 1] = carry end
  return join(out)
end

-- a - b for a >= b; callers check with dcmp first.
local function dsub(a, b)
  local x, y, out, borrow = limbs(norm(a)), limbs(norm(b)), {}, 0
  for i = 1, #x do
    local s = x[i] - (y[i] or 0) - borrow
    if s < 0 then out[i] = s + BASE; borrow = 1 else out[i] = s; borrow = 0 end
  end
  return join(out)
end

local function dmax(a, b)
  if dcmp(a, b) >= 0 then return norm(a) end
  return norm(b)
end

local function nonce_member(n)
  n = norm(n)
  return string.rep('0', 20 - #n) .. n
end
"""


def nonce_member(nonce: int) -> str:
    """The sorted-set member for a nonce: fixed width, so lexicographic order is numeric."""
    return str(nonce).zfill(NONCE_WIDTH)
