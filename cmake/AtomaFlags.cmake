# Warning and sanitizer flags live on one INTERFACE target that every atoma target links.
add_library(atoma_flags INTERFACE)
target_compile_options(atoma_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wno-unused-parameter -Wshadow=local -Wnon-virtual-dtor)
if(ATOMA_WERROR)
  target_compile_options(atoma_flags INTERFACE -Werror)
endif()
target_include_directories(atoma_flags INTERFACE ${PROJECT_SOURCE_DIR}/include)

set(ATOMA_SANITIZE "" CACHE STRING "Sanitizers to build with: address;undefined")
if(ATOMA_SANITIZE)
  string(REPLACE ";" "," _san "${ATOMA_SANITIZE}")
  target_compile_options(atoma_flags INTERFACE -fsanitize=${_san} -fno-omit-frame-pointer)
  target_link_options(atoma_flags INTERFACE -fsanitize=${_san})
endif()
