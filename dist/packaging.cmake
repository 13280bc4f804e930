# Install rules and the Debian package (issue 14): `cpack -G DEB` in the build
# directory makes mlink_<version>-<release>_<arch>.deb for Debian 12.
# tests/e2e/test_package.sh builds it, runs lintian and installs it into a
# throwaway root. Paths are Debian's: /usr/sbin, /lib/systemd/system (bookworm
# keeps units out of /usr/lib), /usr/share/doc/mlink.
include(GNUInstallDirs)
# `install` / cpack do not build `all` first (tests, benchmarks): they package what is built;
# tests/e2e/test_package.sh builds the installed targets itself.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(MLINK_DIST ${CMAKE_SOURCE_DIR}/dist)
set(MLINK_DOCDIR ${CMAKE_INSTALL_DATAROOTDIR}/doc/mlink)
set(MLINK_DEB_MAINTAINER "mlink developers <dev@mlink.invalid>"
    CACHE STRING "Maintainer: field of the Debian package")
set(MLINK_DEB_RELEASE 1 CACHE STRING "Debian revision of the package")
set(MLINK_DEB_VERSION ${PROJECT_VERSION}-${MLINK_DEB_RELEASE})

# Both in sbin: mlinkd is a daemon, and mlinkctl needs root for everything but
# keygen (the control socket is 0600 root, the pins are root's), like ip(8)'s
# admin peers in /usr/sbin; its man page is in section 8 with mlinkd's.
install(TARGETS mlinkd mlinkctl RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
# Nothing else of the datapath: mlinkd carries the BPF object in its libbpf
# skeleton (mlink.skel.h), so no .bpf.o is loaded from disk.

# Installed, not enabled: the unit needs /etc/mlink/mlink.toml, which only the
# operator can write (ExecStartPre=--check fails without it, naming the file).
install(FILES ${MLINK_DIST}/systemd/mlinkd.service ${MLINK_DIST}/systemd/mlinkd-cleanup.service
        DESTINATION /lib/systemd/system)
# Where the config and key files go; empty, so that nothing half-configured
# starts and no conffile prompt follows an operator's edits.
install(DIRECTORY DESTINATION /etc/mlink)

# Man pages: roff written by hand (dist/man), the version filled in, gzip -n
# (no name or time stamp: reproducible, as lintian wants).
set(MLINK_MAN_OUT ${CMAKE_BINARY_DIR}/man)
set(MLINK_MAN_GZ)
foreach(page mlinkd.8 mlinkctl.8 mlink.toml.5)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  configure_file(${MLINK_DIST}/man/${page} ${MLINK_MAN_OUT}/${page} @ONLY)
  add_custom_command(OUTPUT ${MLINK_MAN_OUT}/${page}.gz
                     COMMAND gzip -9n -c ${page} > ${page}.gz
                     DEPENDS ${MLINK_MAN_OUT}/${page} WORKING_DIRECTORY ${MLINK_MAN_OUT})
  list(APPEND MLINK_MAN_GZ ${MLINK_MAN_OUT}/${page}.gz)
  install(FILES ${MLINK_MAN_OUT}/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

configure_file(${MLINK_DIST}/debian/changelog.in ${MLINK_MAN_OUT}/changelog.Debian @ONLY)
add_custom_command(OUTPUT ${MLINK_MAN_OUT}/changelog.Debian.gz
                   COMMAND gzip -9n -c changelog.Debian > changelog.Debian.gz
                   DEPENDS ${MLINK_MAN_OUT}/changelog.Debian WORKING_DIRECTORY ${MLINK_MAN_OUT})
add_custom_target(mlink_dist_files ALL DEPENDS ${MLINK_MAN_GZ} ${MLINK_MAN_OUT}/changelog.Debian.gz)

install(FILES ${MLINK_DIST}/bash-completion/mlinkctl
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions)

# Docs: the units' Documentation= points at OPERATIONS.md, so it stays
# uncompressed (dh_compress would leave a .md that systemctl links to, too).
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/OPERATIONS.md
              ${CMAKE_SOURCE_DIR}/docs/ARCHITECTURE.md ${CMAKE_SOURCE_DIR}/docs/PROTOCOL.md
              ${MLINK_DIST}/debian/copyright ${MLINK_MAN_OUT}/changelog.Debian.gz
        DESTINATION ${MLINK_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/examples/ DESTINATION ${MLINK_DOCDIR}/examples
        FILES_MATCHING PATTERN "*.toml")
# The tshark dissector and the Grafana dashboard (docs/OPERATIONS.md says how to use them).
install(FILES ${MLINK_DIST}/wireshark/mlink.lua ${MLINK_DIST}/wireshark/mlink_hmac.lua
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/mlink/wireshark)
install(FILES ${MLINK_DIST}/grafana/mlink.json DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/mlink/grafana)

# ---- CPack: the .deb --------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mlink)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${MLINK_DEB_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "multi-link load balancing with an eBPF datapath")
# The long description; CPack puts the summary above it as the synopsis.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "A host with several network links, each in its own subnet with its own
address, gets a virtual device (ml0) with its own address; traffic to
another participating host is spread, per flow, over every link that
reaches it, by an eBPF program on ml0. mlinkd, the agent, learns its peers
by an authenticated discovery protocol or from its configuration and proves
every link to every peer with authenticated BFD and echo, so a failed link
is taken out in under 100 ms. mlinkctl shows and changes its state.")
set(CPACK_DEBIAN_PACKAGE_RELEASE ${MLINK_DEB_RELEASE})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: from the binaries' libraries (dpkg-shlibdeps, package dpkg-dev).
# Nothing else is needed at run time; bpftool reads the pinned maps by hand.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS bpftool)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS bash-completion)
# /lib/systemd/system and /etc/mlink are absolute: staged under DESTDIR, never
# written to this machine's own /lib or /etc while packaging.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)  # with DESTDIR, the prefix the package's files live under
set(CPACK_STRIP_FILES ON)  # a RelWithDebInfo build ships stripped binaries
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
    GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
include(CPack)
