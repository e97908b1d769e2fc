#!/bin/bash
# devstack plugin for pyct: installs it, writes /etc/pyct/pyct.conf from
# devstack's database and RabbitMQ settings, migrates the database, creates
# the demo image and flavors, and runs pyct-api and pyct-compute.

function install_pyct {
    install_package busybox-static e2fsprogs util-linux
    setup_develop $PYCT_DIR
    # shared kernel pools sized so each guest's own limits bind first
    sudo install -m 644 $PYCT_DIR/etc/sysctl.d/60-pyct.conf /etc/sysctl.d/
    sudo sysctl -q -p /etc/sysctl.d/60-pyct.conf
}

function configure_pyct {
    sudo install -d -o $STACK_USER $PYCT_CONF_DIR
    sudo install -d -o root -m 700 $PYCT_STATE_PATH
    iniset $PYCT_CONF DEFAULT host $(hostname)
    iniset $PYCT_CONF DEFAULT state_path $PYCT_STATE_PATH
    iniset $PYCT_CONF DEFAULT virt_driver $PYCT_VIRT_DRIVER
    iniset $PYCT_CONF DEFAULT transport_url $(get_transport_url)
    iniset $PYCT_CONF DEFAULT debug $ENABLE_DEBUG_LOG_LEVEL
    iniset $PYCT_CONF api listen $PYCT_API_HOST
    iniset $PYCT_CONF api port $PYCT_API_PORT
    iniset $PYCT_CONF database connection $(database_connection_url pyct)
    cp $PYCT_DIR/etc/pyct/clouds.yaml $PYCT_CONF_DIR/clouds.yaml
}

function init_pyct {
    recreate_database pyct
    $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF db sync
    sudo $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF \
        image create-busybox $PYCT_DEMO_IMAGE --if-missing
    $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF flavor create \
        m1.tiny --id 1 --vcpus 1 --ram 512 --disk 1 --if-missing
    $PYCT_BIN_DIR/pyct-manage --config-file $PYCT_CONF flavor create \
        m1.small --id 2 --vcpus 1 --ram 2048 --disk 20 --if-missing
}

function start_pyct {
    run_process pyct-api "$PYCT_BIN_DIR/pyct-api --config-file $PYCT_CONF"
    # the container driver needs root: namespaces, cgroups, mounts
    run_process pyct-compute "$PYCT_BIN_DIR/pyct-compute --config-file $PYCT_CONF" root root
}

function stop_pyct {
    stop_process pyct-api
    stop_process pyct-compute
}

PYCT_BIN_DIR=$(get_python_exec_prefix)

if is_service_enabled pyct-api pyct-compute; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        install_pyct
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        configure_pyct
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        init_pyct
        start_pyct
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_pyct
    fi
    if [[ "$1" == "clean" ]]; then
        sudo rm -rf $PYCT_STATE_PATH $PYCT_CONF_DIR
    fi
fi
