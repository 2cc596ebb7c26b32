#pragma once
// uninit_buffer: a byte vector whose resize() leaves new bytes uninitialised. For buffers that are
// filled right after they grow (a socket read into a frame buffer): std::vector<std::byte> would
// zero every byte first, which on the produce path cost about a quarter of the broker's
// instructions (a memset of each request frame before the socket overwrote it).
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace ferry {

template <class T>
struct default_init_allocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = default_init_allocator<U>;
  };
  using std::allocator<T>::allocator;
  // Value-initialisation (what resize() asks for) becomes default-initialisation: for trivial
  // types, nothing. Construction with arguments is unchanged.
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::allocator_traits<std::allocator<T>>::construct(static_cast<std::allocator<T>&>(*this), p,
                                                        std::forward<Args>(args)...);
  }
};

using uninit_buffer = std::vector<std::byte, default_init_allocator<std::byte>>;

}  // namespace ferry
