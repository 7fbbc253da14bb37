# Warnings for our own targets: on everywhere, errors in CI (SK_WERROR).
# No -Wnull-dereference: GCC 12 reports false positives inside libstdc++ strings (via CLI11).
function(sk_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
    -Wconversion -Wsign-conversion -Wdouble-promotion -Wformat=2
    -Wimplicit-fallthrough)
  if(SK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
