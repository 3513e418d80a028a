;; The masking kernel of rfc6455 (RFC 6455 §5.3): XOR a region of linear memory with a repeating
;; 4-byte masking key, in place. Masking and unmasking are the same operation.
;;
;; This text is the source of truth. `npm run build:wasm` assembles it with scripts/build-wasm.ts (an
;; assembler for exactly the subset of the WebAssembly text format used here: flat instructions, named
;; locals and labels) and writes the bytes into src/protocol/mask-wasm.ts; test/mask-wasm.test.ts fails
;; if the two differ.
;;
;; The key is given as the i32 whose little-endian bytes (WebAssembly memory is always little-endian)
;; are the key bytes for positions ptr, ptr + 1, ptr + 2 and ptr + 3, so the caller has already rotated
;; it for the payload position (the phase) of the first byte.
;;
;; The memory is one 64 KiB page, used as a window: the JavaScript side copies a buffer in, calls xor,
;; and copies it out, 64 KiB at a time (the size of a typical socket read, and small enough that the
;; window and the piece being copied stay in cache; larger windows measured no faster). It never grows,
;; so a view of it taken once stays valid.
(module
  (memory (export "memory") 1)

  ;; xor(ptr, len, key): memory[ptr + i] ^= byte (i mod 4) of key, for i in [0, len).
  (func (export "xor") (param $ptr i32) (param $len i32) (param $key i32)
    (local $end i32)
    (local $stop i32)
    (local $mask v128)
    local.get $ptr
    local.get $len
    i32.add
    local.set $end
    ;; 16 bytes hold 4 whole key periods, so the same vector serves every block.
    local.get $key
    i32x4.splat
    local.set $mask

    ;; Blocks of 64 bytes: four independent 128-bit XORs per iteration.
    local.get $ptr
    local.get $len
    i32.const -64
    i32.and
    i32.add
    local.set $stop
    block $blocks64_done
      local.get $ptr
      local.get $stop
      i32.ge_u
      br_if $blocks64_done
      loop $blocks64
        local.get $ptr
        local.get $ptr
        v128.load offset=0 align=1
        local.get $mask
        v128.xor
        v128.store offset=0 align=1
        local.get $ptr
        local.get $ptr
        v128.load offset=16 align=1
        local.get $mask
        v128.xor
        v128.store offset=16 align=1
        local.get $ptr
        local.get $ptr
        v128.load offset=32 align=1
        local.get $mask
        v128.xor
        v128.store offset=32 align=1
        local.get $ptr
        local.get $ptr
        v128.load offset=48 align=1
        local.get $mask
        v128.xor
        v128.store offset=48 align=1
        local.get $ptr
        i32.const 64
        i32.add
        local.tee $ptr
        local.get $stop
        i32.lt_u
        br_if $blocks64
      end
    end

    ;; Up to three remaining blocks of 16 bytes.
    block $blocks16_done
      loop $blocks16
        local.get $end
        local.get $ptr
        i32.sub
        i32.const 16
        i32.lt_u
        br_if $blocks16_done
        local.get $ptr
        local.get $ptr
        v128.load align=1
        local.get $mask
        v128.xor
        v128.store align=1
        local.get $ptr
        i32.const 16
        i32.add
        local.set $ptr
        br $blocks16
      end
    end

    ;; Up to three remaining words of 4 bytes: a whole key period each, so the key does not move.
    block $words_done
      loop $words
        local.get $end
        local.get $ptr
        i32.sub
        i32.const 4
        i32.lt_u
        br_if $words_done
        local.get $ptr
        local.get $ptr
        i32.load align=1
        local.get $key
        i32.xor
        i32.store align=1
        local.get $ptr
        i32.const 4
        i32.add
        local.set $ptr
        br $words
      end
    end

    ;; Up to three remaining bytes: the low byte of the key is the one for ptr; rotate to the next.
    block $bytes_done
      loop $bytes
        local.get $ptr
        local.get $end
        i32.ge_u
        br_if $bytes_done
        local.get $ptr
        local.get $ptr
        i32.load8_u
        local.get $key
        i32.xor
        i32.store8
        local.get $key
        i32.const 8
        i32.rotr
        local.set $key
        local.get $ptr
        i32.const 1
        i32.add
        local.set $ptr
        br $bytes
      end
    end
  )
)
